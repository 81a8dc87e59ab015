"""PutObject: a body stored under a key, with its Content-Type, representation headers and
``x-amz-meta-*``, verified as it streams in (signed sha256 or aws-chunked signatures,
Content-MD5, a flexible checksum in a header or a trailer) and committed only once every
check passed at its end, so that a failing body stores nothing.

With aws-chunked framing Content-Length counts the framing: the object's size is
``x-amz-decoded-content-length`` (or unknown), and ``max_object_bytes`` bounds the decoded
bytes (S3.md pitfall 18). ``If-None-Match: *`` makes the commit create-only; of two racing
creates the commit transaction lets one win and the other gets 412 (pitfall 16).
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from diststorage.core.errors import AlreadyExists, PayloadTooLarge, PreconditionFailed
from diststorage.gateway.auth.checks import decoded_size
from diststorage.gateway.http.callers import request_body
from diststorage.gateway.http.headers import parse_declared_size
from diststorage.gateway.objects import PutOperation
from diststorage.gateway.objects.ports import ByteSource, ChecksumSource
from diststorage.gateway.s3.addressing import check_key
from diststorage.gateway.s3.attributes import attributes_from_headers, content_type_of
from diststorage.gateway.s3.call import S3Call
from diststorage.gateway.s3.checksum_headers import checksum_headers
from diststorage.gateway.s3.conditions import FAILED, write_conditions
from diststorage.gateway.s3.xml import quoted
from diststorage.meta import ObjectAttributes, ObjectInfo

_STREAMING = "STREAMING-"
# Received bytes an aws-chunked body may hold beyond its decoded ones: its framing, which
# costs about 90 bytes per signed chunk, plus trailers. Twice the decoded limit and a MiB
# admits chunks down to ~100 bytes; the decoded bytes are bounded exactly all the same.
_FRAMING_SLACK = 1 << 20


@dataclass(frozen=True, slots=True)
class BodySizes:
    """``raw``: the bytes on the wire, ``size``: the object's (either None when unknown);
    ``max_raw``: the most bytes the body may hold on the wire."""

    raw: int | None
    size: int | None
    max_raw: int


def body_sizes(call: S3Call) -> BodySizes:
    """PayloadTooLarge for an announced size over the object limit, LengthRequired for no
    length at all."""
    headers = call.headers
    max_bytes = call.settings.max_object_bytes
    chunked = headers.get("x-amz-content-sha256", "").upper().startswith(_STREAMING)
    max_raw = 2 * max_bytes + _FRAMING_SLACK if chunked else max_bytes
    raw = parse_declared_size(
        call.request.content_length, headers.get("Transfer-Encoding"), max_raw
    )
    size = decoded_size(headers, raw)
    if size is not None and size > max_bytes:
        raise PayloadTooLarge(f"{size} bytes is more than the {max_bytes}-byte object limit")
    return BodySizes(raw, size, max_raw)


async def write_object(
    call: S3Call,
    content_type: str,
    attrs: ObjectAttributes,
    declared_size: int | None,
    body: ByteSource,
    checksum: ChecksumSource | None,
) -> ObjectInfo:
    """Stores the body at the call's key under the request's write conditions: 412 for
    ``If-None-Match: *`` over an object (decided in the commit) or a stale ``If-Match``."""
    conditions = write_conditions(call.headers)
    operation = PutOperation(
        namespace=call.bucket,
        key=check_key(call.key),
        content_type=content_type,
        requested_policy=None,
        declared_size=declared_size,
        replace=not conditions.create_only,
        if_match=conditions.if_match,
        attrs=attrs,
    )
    try:
        return await call.services.writer.write(operation, body, checksum)
    except AlreadyExists as exc:
        raise PreconditionFailed(FAILED) from exc


async def put_object(call: S3Call) -> web.StreamResponse:
    content_type = content_type_of(call.headers)
    attrs = attributes_from_headers(call.headers)
    sizes = body_sizes(call)
    body, _ = request_body(
        call.request,
        sizes.raw,
        call.settings.max_object_bytes,
        max_raw_bytes=sizes.max_raw,
    )
    info = await write_object(call, content_type, attrs, sizes.size, body, body)
    headers = {"ETag": quoted(info.etag), **checksum_headers(info.checksum)}
    return web.Response(status=200, headers=headers)
