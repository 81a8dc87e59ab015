"""The native API's request body: as verified against what the sender signed, and never
aws-chunked (only the S3 API decodes that framing)."""

from __future__ import annotations

from aiohttp import web

from diststorage.core.errors import InvalidRequest
from diststorage.gateway.http.callers import request_body
from diststorage.gateway.objects.ports import ByteSource

_STREAMING = "STREAMING-"


def verified_body(request: web.Request, declared_size: int | None, max_bytes: int) -> ByteSource:
    """The body, checked as it is read against the signed ``x-amz-content-sha256`` (and a
    Content-MD5 or ``x-amz-checksum-*`` header when sent): the last read raises when it does
    not match, before the pipelines commit. Raises InvalidRequest for aws-chunked framing,
    whose Content-Length is not the object's size."""
    if request.headers.get("x-amz-content-sha256", "").upper().startswith(_STREAMING):
        raise InvalidRequest("aws-chunked bodies are for the S3 API: send the bytes as they are")
    body, _ = request_body(request, declared_size, max_bytes)
    return body
