"""Who sent a request, once the guard has admitted it, and the request's body as verified
against what the sender signed (its sha256, or nothing for an unsigned payload)."""

from __future__ import annotations

from aiohttp import web

from diststorage.core.errors import InvalidRequest
from diststorage.gateway.api.body import RequestBody
from diststorage.gateway.auth.body import wrap_body
from diststorage.gateway.auth.ports import Caller, Principal
from diststorage.gateway.objects.ports import ByteSource

CALLER: web.RequestKey[Caller] = web.RequestKey("caller", Caller)
_STREAMING = "STREAMING-"


def set_caller(request: web.Request, caller: Caller) -> None:
    request[CALLER] = caller


def caller_of(request: web.Request) -> Principal | None:
    """The verified sender's principal; None for an unauthenticated (anonymous) request."""
    caller = request.get(CALLER)
    return None if caller is None else caller.principal


def verified_body(request: web.Request, declared_size: int | None, max_bytes: int) -> ByteSource:
    """The body, checked as it is read against the signed ``x-amz-content-sha256`` (and a
    Content-MD5 or ``x-amz-checksum-*`` header when sent): the last read raises when it does
    not match, before the pipelines commit. Raises InvalidRequest for aws-chunked framing,
    which only the S3 API decodes (its Content-Length is not the object's size)."""
    if request.headers.get("x-amz-content-sha256", "").upper().startswith(_STREAMING):
        raise InvalidRequest("aws-chunked bodies are for the S3 API: send the bytes as they are")
    caller = request.get(CALLER)
    raw = RequestBody(request, declared_size, max_bytes)
    body, _ = wrap_body(
        raw, None if caller is None else caller.verified, request.headers, max_bytes
    )
    return body
