"""CopyObject: an object's bytes read through the read pipeline straight into the write
pipeline (``StreamedBody``), so memory stays a few stripes whatever the size; no byte is
shared between source and copy.

The caller needs READ on the source bucket besides the guard's WRITE on the destination.
``x-amz-metadata-directive`` COPY (the default) keeps the source's Content-Type and
attributes, REPLACE takes the request's instead, wholly, never merged (S3.md pitfall 17). A copy
onto itself must REPLACE, or it would change nothing: 400 InvalidRequest, as S3 answers.
``x-amz-copy-source-if-*`` are judged on the source (412 whenever one fails), the write
conditions (``If-None-Match: *``, ``If-Match``) on the destination, as for a PutObject.
"""

from __future__ import annotations

from enum import StrEnum

from aiohttp import web

from diststorage.core.errors import InvalidRequest, PreconditionFailed
from diststorage.gateway.auth.ports import Access
from diststorage.gateway.objects.checksumming import checksumming_body
from diststorage.gateway.objects.ports import ByteSource, ChecksumSource
from diststorage.gateway.objects.streamed_body import StreamedBody, close_stream
from diststorage.gateway.s3.addressing import check_key
from diststorage.gateway.s3.attributes import attributes_from_headers, content_type_of
from diststorage.gateway.s3.call import S3Call
from diststorage.gateway.s3.conditions import (
    COPY_SOURCE_CONDITIONS,
    FAILED,
    Verdict,
    evaluate,
    write_conditions,
)
from diststorage.gateway.s3.copy_source import COPY_SOURCE_HEADER, parse_copy_source
from diststorage.gateway.s3.put_object import write_object
from diststorage.gateway.s3.xml import child, document, quoted, timestamp, xml_response
from diststorage.meta import ObjectInfo
from diststorage.s3auth.checksums import parse_algorithm

# S3's limit on what one CopyObject copies; larger objects are copied part by part.
MAX_COPY_BYTES = 5 << 30
_DIRECTIVE_HEADER = "x-amz-metadata-directive"
_CHECKSUM_ALGORITHM_HEADER = "x-amz-checksum-algorithm"


class Directive(StrEnum):
    COPY = "COPY"
    REPLACE = "REPLACE"


def directive_of(call: S3Call) -> Directive:
    value = call.headers.get(_DIRECTIVE_HEADER, Directive.COPY.value)
    try:
        return Directive(value.strip().upper())
    except ValueError:
        raise InvalidRequest(f"Unknown metadata directive {value[:20]!r}") from None


def _checksum_algorithm(call: S3Call, source: ObjectInfo) -> str | None:
    """The copy's checksum: the one asked for, else the source's algorithm, computed anew
    over the whole copy (FULL_OBJECT)."""
    asked = call.headers.get(_CHECKSUM_ALGORITHM_HEADER)
    if asked is not None:
        return parse_algorithm(asked).value
    return None if source.checksum is None else source.checksum.algorithm


def _result(info: ObjectInfo) -> web.Response:
    root = document("CopyObjectResult")
    child(root, "ETag", quoted(info.etag))
    child(root, "LastModified", timestamp(info.created_at))
    if info.checksum is not None:
        child(root, "ChecksumType", info.checksum.kind)
        child(root, f"Checksum{info.checksum.algorithm}", info.checksum.value)
    return xml_response(root)


async def copy_object(call: S3Call) -> web.StreamResponse:
    check_key(call.key)
    write_conditions(call.headers)
    source = parse_copy_source(call.headers[COPY_SOURCE_HEADER])
    services = call.services
    await services.authenticator.authorize(call.principal, source.bucket, Access.READ)
    directive = directive_of(call)
    if (source.bucket, source.key) == (call.bucket, call.key) and directive is Directive.COPY:
        raise InvalidRequest(
            "This copy request is illegal because it is trying to copy an object to itself"
            " without changing the object's metadata, storage class, website redirect"
            " location or encryption attributes."
        )
    layout = await services.store.get_layout(source.bucket, source.key)
    info = layout.info
    if evaluate(call.headers, info, COPY_SOURCE_CONDITIONS) is not Verdict.PROCEED:
        raise PreconditionFailed(FAILED)
    if info.size_bytes > MAX_COPY_BYTES:
        raise InvalidRequest(
            "The specified copy source is larger than the maximum allowable size for a copy"
            f" source: {MAX_COPY_BYTES}"
        )
    if directive is Directive.COPY:
        content_type, attrs = info.content_type, info.attrs
    else:
        content_type, attrs = content_type_of(call.headers), attributes_from_headers(call.headers)
    algorithm = _checksum_algorithm(call, info)
    with services.reads.reading(info.object_id):
        pieces = services.reader.stream(layout, 0, info.size_bytes)
        body: ByteSource = StreamedBody(pieces)
        checksum: ChecksumSource | None = None
        if algorithm is not None:
            body, checksum = checksumming_body(algorithm, body)
        try:
            copied = await write_object(call, content_type, attrs, info.size_bytes, body, checksum)
        finally:
            await close_stream(pieces)
    return _result(copied)
