"""UploadPart and UploadPartCopy: one part of an open upload, from the request's body or from
bytes of a committed object.

A part's body is read as any object body is (``http.callers.request_body``): aws-chunked
framing decoded, chunk signatures and trailers checked, the signed sha256, Content-MD5 and an
``x-amz-checksum-*`` header verified at its end, before the part commits. Its size is the
decoded one (``x-amz-decoded-content-length`` for aws-chunked bodies). The checksum the
client sent, header or trailer, is the part's; a part sent without one gets its upload's
algorithm, computed as it is stored (``Multipart.upload_part``'s ``wrap``); one of another
algorithm than the upload's is refused before the body is read.

A copied part needs READ on its source bucket besides the guard's WRITE on the upload's;
``x-amz-copy-source-if-*`` are judged on the source as for CopyObject (412 when one fails),
and ``x-amz-copy-source-range`` must name both ends, within the source.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import astuple
from datetime import UTC, datetime

from aiohttp import web

from diststorage.core.errors import InvalidRequest, PreconditionFailed
from diststorage.gateway.auth.checks import decoded_size
from diststorage.gateway.auth.ports import Access
from diststorage.gateway.http.callers import request_body
from diststorage.gateway.http.headers import parse_declared_size, parse_range_spec
from diststorage.gateway.objects.multipart import MAX_PART_BYTES
from diststorage.gateway.objects.operations import RangeSpec
from diststorage.gateway.s3.call import S3Call
from diststorage.gateway.s3.checksum_headers import checksum_headers
from diststorage.gateway.s3.conditions import (
    COPY_SOURCE_CONDITIONS,
    FAILED,
    Verdict,
    evaluate,
)
from diststorage.gateway.s3.copy_source import COPY_SOURCE_HEADER, parse_copy_source
from diststorage.gateway.s3.multipart_xml import copy_part_result
from diststorage.gateway.s3.xml import quoted, xml_response
from diststorage.s3auth import ChecksumAlgorithm

COPY_RANGE_HEADER = "x-amz-copy-source-range"
_PART_NUMBER = re.compile(r"[0-9]{1,5}")
_STREAMING = "STREAMING-"
# What an aws-chunked body may hold on the wire beyond its decoded bytes: its framing (about
# 90 bytes a signed chunk) and trailers. The decoded bytes are bounded exactly all the same.
_FRAMING_SLACK = MAX_PART_BYTES + (1 << 20)


def part_target(query: Mapping[str, str]) -> tuple[str, int]:
    """The upload id and part number a part request names (the router saw both); the
    number's range is checked by ``Multipart``."""
    number = query.get("partNumber", "").strip()
    if not _PART_NUMBER.fullmatch(number):
        raise InvalidRequest("Part number must be an integer between 1 and 10000, inclusive")
    return query.get("uploadId", ""), int(number)


def copy_source_range(header: str | None) -> RangeSpec | None:
    """``x-amz-copy-source-range``: ``bytes=first-last``, both given (no suffix or open
    range, unlike a GET's Range). Whether it lies within the source, the pipeline judges."""
    if header is None:
        return None
    spec = parse_range_spec(header)
    if spec is None or spec.first is None or spec.last is None:
        raise InvalidRequest(
            "The x-amz-copy-source-range value must be of the form bytes=first-last where "
            "first and last are the zero-based offsets of the first and last bytes to copy"
        )
    return spec


async def _check_algorithm(call: S3Call, upload_id: str, sent: ChecksumAlgorithm) -> None:
    """A part's checksum must be of its upload's algorithm, when it was created with one:
    refused before the body is read, as S3 does, rather than at Complete."""
    upload = await call.services.multipart.upload(upload_id, call.bucket, call.key)
    expected = upload.checksum_algorithm
    if expected is not None and expected != sent.value:
        raise InvalidRequest(
            f"Checksum Type mismatch occurred, expected checksum Type: {expected.lower()}, "
            f"actual checksum Type: {sent.value.lower()}"
        )


async def upload_part(call: S3Call) -> web.StreamResponse:
    upload_id, part_number = part_target(call.query)
    request = call.request
    chunked = request.headers.get("x-amz-content-sha256", "").upper().startswith(_STREAMING)
    max_raw = MAX_PART_BYTES + _FRAMING_SLACK if chunked else MAX_PART_BYTES
    raw_size = parse_declared_size(
        request.content_length, request.headers.get("Transfer-Encoding"), max_raw
    )
    body, checks = request_body(request, raw_size, MAX_PART_BYTES, max_raw_bytes=max_raw)
    sent = checks.checksum[0] if checks.checksum is not None else checks.trailer
    if sent is not None:
        await _check_algorithm(call, upload_id, sent)
    info = await call.services.multipart.upload_part(
        upload_id,
        call.bucket,
        call.key,
        part_number,
        decoded_size(request.headers, raw_size),
        body,
        checksum=None if sent is None else body,
    )
    headers = {"ETag": quoted(info.etag), **checksum_headers(info.checksum)}
    return web.Response(status=200, headers=headers)


async def upload_part_copy(call: S3Call) -> web.StreamResponse:
    upload_id, part_number = part_target(call.query)
    headers = call.headers
    source = parse_copy_source(headers[COPY_SOURCE_HEADER])
    await call.services.authenticator.authorize(call.principal, source.bucket, Access.READ)
    if any(name in headers for name in astuple(COPY_SOURCE_CONDITIONS)):
        layout = await call.services.store.get_layout(source.bucket, source.key)
        if evaluate(headers, layout.info, COPY_SOURCE_CONDITIONS) is not Verdict.PROCEED:
            raise PreconditionFailed(FAILED)
    info = await call.services.multipart.upload_part_copy(
        upload_id,
        call.bucket,
        call.key,
        part_number,
        source.bucket,
        source.key,
        copy_source_range(headers.get(COPY_RANGE_HEADER)),
    )
    return xml_response(copy_part_result(info.etag, datetime.now(UTC), info.checksum))
