"""Who may use the native API and the ``/_/`` routes: every request is signed (SigV4, in the
header or a presigned URL) by a key with the right, checked before anything else happens.

- ``GET /_/health`` (and HEAD) is open to all: load balancers and probes carry no keys.
- The other ``/_/`` routes need an admin key (the root key, or one created ``--admin``).
- The dashboard (``/_/ui``) is let through: it has its own login and session (an admin key
  too), checked by its own middleware (``gateway.dashboard.security``), since a browser does not
  sign its requests.
- Object requests act on the bucket ``default``: reads and listings need READ on it, writes
  and deletes WRITE. With ``--anonymous`` unsigned object requests are let through (signed ones
  are still checked): the original design's open API, for experiments.

The request is judged before any 100 Continue goes out (``http.admission``).
"""

from __future__ import annotations

from aiohttp import web

from diststorage.core.errors import AccessDenied
from diststorage.gateway.api.parse import READ_METHODS, SYSTEM_PREFIX, is_system_path, is_ui_path
from diststorage.gateway.auth.ports import Access, Authenticator, Caller
from diststorage.gateway.http.admission import Admission, signed_request_of
from diststorage.gateway.http.callers import set_caller
from diststorage.meta import DEFAULT_NAMESPACE

OPEN_PATHS = frozenset({f"/{SYSTEM_PREFIX}health"})


def is_open(request: web.Request) -> bool:
    path = request.raw_path.partition("?")[0]
    return (path in OPEN_PATHS and request.method in READ_METHODS) or is_ui_path(path)


class RequestGuard(Admission):
    """Admits a request or raises: AccessDenied for an unsigned request (unless anonymous
    object access is on) or a key without the right, and whatever authentication raises for a
    signature that fails (InvalidAccessKeyId, SignatureDoesNotMatch, ...)."""

    def __init__(self, authenticator: Authenticator, anonymous: bool) -> None:
        self._authenticator = authenticator
        self._anonymous = anonymous

    async def judge(self, request: web.Request) -> None:
        """The verified caller is then on the request (``http.callers``)."""
        if is_open(request):
            return
        caller = await self._authenticator.authenticate(signed_request_of(request))
        system = is_system_path(request.raw_path)
        if caller is None:
            if system or not self._anonymous:
                raise AccessDenied(
                    "this gateway takes signed requests only: sign with an access key (SigV4, "
                    'e.g. curl --aws-sigv4 "aws:amz:us-east-1:s3" --user ID:SECRET)'
                )
        else:
            await self._authorize(request, caller, system)
            set_caller(request, caller)

    async def _authorize(self, request: web.Request, caller: Caller, system: bool) -> None:
        if system:
            if not caller.principal.is_admin:
                raise AccessDenied("the /_/ routes need an admin access key")
            return
        access = Access.READ if request.method in READ_METHODS else Access.WRITE
        await self._authenticator.authorize(caller.principal, DEFAULT_NAMESPACE, access)
