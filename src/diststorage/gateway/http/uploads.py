"""How many uploads one gateway serves at once, and how many of them one client may hold.

An upload here is any request that brings a body (PUT or POST with a Content-Length above
zero, or chunked): each holds node streams, reservations and buffers while it runs, so a
client opening hundreds of them would take what every other client needs. Its slot is taken
once the front end's guard has admitted the request (so the client is known: its verified
access key, else its peer address) and given back when its handler ends, whatever the
outcome. Over either limit the request is refused at once with ``SlowDown`` (503, with a
Retry-After), its body unread.

Only the event-loop thread touches the counts, so they need no lock.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler

from diststorage.core.errors import SlowDown
from diststorage.gateway.http.callers import caller_of

_BODY_METHODS = frozenset({"PUT", "POST"})


@dataclass(frozen=True)
class UploadLimits:
    max_uploads: int
    max_uploads_per_client: int
    retry_after_s: int

    def __post_init__(self) -> None:
        assert self.max_uploads >= 1 and self.max_uploads_per_client >= 1
        assert self.retry_after_s >= 0


def brings_body(request: web.Request) -> bool:
    if request.method not in _BODY_METHODS:
        return False
    if request.content_length is None:
        return request.body_exists  # chunked
    return request.content_length > 0


def client_of(request: web.Request) -> str:
    """Whose slots an upload counts against: its access key, else its peer address."""
    principal = caller_of(request)
    if principal is not None:
        return f"key:{principal.access_key_id}"
    return f"peer:{request.remote or 'unknown'}"


# Where a front end's app keeps the gateway's slots, for the guard's 100-continue check.
UPLOAD_SLOTS: web.AppKey[UploadSlots] = web.AppKey("upload_slots")


class UploadSlots:
    """The slots of one gateway, shared by all its front ends (see the module docstring)."""

    def __init__(self, limits: UploadLimits) -> None:
        self._limits = limits
        self._per_client: Counter[str] = Counter()
        self.open_uploads = 0

    def take(self, client: str) -> None:
        """Takes a slot for ``client`` or raises SlowDown; pair with ``give_back``."""
        self.check(client)
        self.open_uploads += 1
        self._per_client[client] += 1

    def check(self, client: str) -> None:
        """Raises SlowDown if ``client`` could not take a slot now; takes none. What the
        guard asks before a 100 Continue, so that a refused client never sends its body."""
        limits = self._limits
        if self.open_uploads >= limits.max_uploads:
            raise SlowDown(
                f"this gateway serves {limits.max_uploads} uploads at once; retry later",
                limits.retry_after_s,
            )
        if self._per_client[client] >= limits.max_uploads_per_client:
            raise SlowDown(
                f"at most {limits.max_uploads_per_client} uploads at once per client; "
                "retry when one has finished",
                limits.retry_after_s,
            )

    def give_back(self, client: str) -> None:
        assert self._per_client[client] > 0 and self.open_uploads > 0, "slot given back twice"
        self.open_uploads -= 1
        self._per_client[client] -= 1
        if not self._per_client[client]:
            del self._per_client[client]

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Innermost on each front end: after the guard (which names the caller), inside the
        error middleware (which answers SlowDown)."""
        if not brings_body(request):
            return await handler(request)
        client = client_of(request)
        self.take(client)
        try:
            return await handler(request)
        finally:
            self.give_back(client)
