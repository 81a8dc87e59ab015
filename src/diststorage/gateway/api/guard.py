"""Who may use the native API and the ``/_/`` routes: every request is signed (SigV4, in the
header or a presigned URL) by a key with the right, checked before anything else happens.

- ``GET /_/health`` (and HEAD) is open to all: load balancers and probes carry no keys.
- The other ``/_/`` routes need an admin key (the root key, or one created ``--admin``).
- Object requests act on the bucket ``default``: reads and listings need READ on it, writes
  and deletes WRITE. With ``--anonymous`` unsigned object requests are let through (signed ones
  are still checked): the original design's open API, for experiments.

A request with ``Expect: 100-continue`` is judged in the route's expect handler, before the
100 Continue goes out, so a refused client never sends its body: on refusal no 100 Continue
is sent, and the middleware then answers the refusal like any error (the body unread).
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from diststorage.core.errors import AccessDenied, DiststorageError
from diststorage.gateway.api.callers import set_caller
from diststorage.gateway.api.parse import READ_METHODS, SYSTEM_PREFIX, is_system_path
from diststorage.gateway.auth.ports import Access, Authenticator, Caller
from diststorage.meta import DEFAULT_NAMESPACE
from diststorage.s3auth.sigv4 import SignedRequest

OPEN_PATHS = frozenset({f"/{SYSTEM_PREFIX}health"})
_ADMITTED: web.RequestKey[bool] = web.RequestKey("admitted", bool)


def signed_request_of(request: web.Request) -> SignedRequest:
    """The request as the verifier reads it: path and query still encoded, headers as sent."""
    path, _, query = request.raw_path.partition("?")
    return SignedRequest(request.method, path, query, tuple(request.headers.items()))


def is_open(request: web.Request) -> bool:
    path = request.raw_path.partition("?")[0]
    return path in OPEN_PATHS and request.method in READ_METHODS


class RequestGuard:
    """Admits a request or raises: AccessDenied for an unsigned request (unless anonymous
    object access is on) or a key without the right, and whatever authentication raises for a
    signature that fails (InvalidAccessKeyId, SignatureDoesNotMatch, ...)."""

    def __init__(self, authenticator: Authenticator, anonymous: bool) -> None:
        self._authenticator = authenticator
        self._anonymous = anonymous

    async def admit(self, request: web.Request) -> None:
        """Checks the request once; the verified caller is then on it (``callers``)."""
        if request.get(_ADMITTED) or is_open(request):
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
        request[_ADMITTED] = True

    async def _authorize(self, request: web.Request, caller: Caller, system: bool) -> None:
        if system:
            if not caller.principal.is_admin:
                raise AccessDenied("the /_/ routes need an admin access key")
            return
        access = Access.READ if request.method in READ_METHODS else Access.WRITE
        await self._authenticator.authorize(caller.principal, DEFAULT_NAMESPACE, access)

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        await self.admit(request)
        return await handler(request)

    async def expect_handler(self, request: web.Request) -> None:
        """Sends 100 Continue only to a request that is admitted (see the module docstring);
        an Expect other than 100-continue is 417, as aiohttp's own handler answers."""
        expect = request.headers.get("Expect", "")
        if expect.lower() != "100-continue":
            raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
        try:
            await self.admit(request)
        except DiststorageError:
            return  # the middleware refuses it again, and answers
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            # The interim answer is not part of the response's size.
            request.writer.output_size = 0
