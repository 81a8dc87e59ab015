"""S3 handlers: multipart uploads (S3.md §3), over ``Multipart``, which does the work.

CreateMultipartUpload records the object-to-be's content type, attributes and flexible
checksum (``x-amz-checksum-algorithm`` / ``-type``). Parts come by UploadPart and
UploadPartCopy (``multipart_parts``). CompleteMultipartUpload reads its XML body (at most
4 MiB, about 10 000 parts) and makes the listed parts the object in one transaction:
``If-None-Match: *`` and ``If-Match`` are decided there (412), and so is the whole object's
checksum when the client names one. No byte is copied, so Complete answers at once, with its
status: no 200 that carries an error later. A retried Complete gets the same 200. Abort is a
204, again and again. ListParts and ListMultipartUploads page as AWS does
(``multipart_listing``).
"""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from multidict import CIMultiDict

from diststorage.core.errors import InvalidRequest
from diststorage.gateway.auth.body import wrap_body
from diststorage.gateway.http.body import RequestBody
from diststorage.gateway.http.callers import CALLER
from diststorage.gateway.http.headers import parse_declared_size
from diststorage.gateway.objects.part_checksums import checksum_choice
from diststorage.gateway.s3.attributes import attributes_from_headers, content_type_of
from diststorage.gateway.s3.call import S3Call, S3Handlers
from diststorage.gateway.s3.conditions import write_conditions
from diststorage.gateway.s3.multipart_listing import (
    parse_parts_request,
    parse_uploads_request,
    parts_result,
    uploads_result,
)
from diststorage.gateway.s3.multipart_parts import upload_part, upload_part_copy
from diststorage.gateway.s3.multipart_xml import complete_result, initiate_result, listed_parts
from diststorage.gateway.s3.routing import Op
from diststorage.gateway.s3.xml import read_xml, xml_response
from diststorage.meta import ListedPart, StoredChecksum
from diststorage.s3auth import algorithm_from_header

MAX_COMPLETE_BODY_BYTES = 4 << 20
_SDK_ALGORITHM_HEADER = "x-amz-sdk-checksum-algorithm"


async def create_upload(call: S3Call) -> web.StreamResponse:
    headers = call.headers
    algorithm, kind = checksum_choice(
        headers.get("x-amz-checksum-algorithm"), headers.get("x-amz-checksum-type")
    )
    upload_id = await call.services.multipart.create(
        call.bucket,
        call.key,
        content_type_of(headers),
        attributes_from_headers(headers),
        algorithm,
        kind,
        call.principal.access_key_id,
    )
    answer = {}
    if algorithm is not None and kind is not None:
        answer = {"x-amz-checksum-algorithm": algorithm, "x-amz-checksum-type": kind}
    return xml_response(initiate_result(call.bucket, call.key, upload_id), headers=answer)


def whole_object_checksum(headers: Mapping[str, str]) -> StoredChecksum | None:
    """The completed object's checksum as a Complete's ``x-amz-checksum-*`` header names it
    (a composite one with or without its ``-N``); its kind is the upload's to say."""
    found = [
        StoredChecksum(algo.value, "FULL_OBJECT", value.strip())
        for name, value in headers.items()
        if (algo := algorithm_from_header(name)) is not None
    ]
    if len(found) > 1:
        raise InvalidRequest(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    return found[0] if found else None


async def _listed_parts(call: S3Call) -> list[ListedPart]:
    """The parts the body lists, the body checked against what was signed (and a
    Content-MD5). The ``x-amz-checksum-*`` header of a Complete is the whole object's, not
    the body's, so the body's checks leave it out, and what announces its algorithm."""
    request = call.request
    declared = parse_declared_size(
        request.content_length, request.headers.get("Transfer-Encoding"), MAX_COMPLETE_BODY_BYTES
    )
    raw = RequestBody(request, declared, MAX_COMPLETE_BODY_BYTES)
    body_headers = CIMultiDict(
        (name, value)
        for name, value in request.headers.items()
        if algorithm_from_header(name) is None and name.lower() != _SDK_ALGORITHM_HEADER
    )
    caller = request.get(CALLER)
    verified = None if caller is None else caller.verified
    body, _ = wrap_body(raw, verified, body_headers, MAX_COMPLETE_BODY_BYTES)
    return listed_parts(await read_xml(body, MAX_COMPLETE_BODY_BYTES))


async def complete_upload(call: S3Call) -> web.StreamResponse:
    conditions = write_conditions(call.headers)
    expected = whole_object_checksum(call.headers)
    parts = await _listed_parts(call)
    info = await call.services.multipart.complete(
        call.query.get("uploadId", ""),
        call.bucket,
        call.key,
        parts,
        if_match=conditions.if_match,
        if_none_match=conditions.create_only,
        expected_checksum=expected,
    )
    # The object's URL as the client addressed it: the raw path, since a parsed URL drops
    # dot segments (``a/../b`` is a key of its own) and re-encodes.
    request = call.request
    location = f"{request.scheme}://{request.host}{request.raw_path.partition('?')[0]}"
    return xml_response(complete_result(location, call.bucket, call.key, info.etag, info.checksum))


async def abort_upload(call: S3Call) -> web.StreamResponse:
    await call.services.multipart.abort(call.query.get("uploadId", ""), call.bucket, call.key)
    return web.Response(status=204)


async def list_parts(call: S3Call) -> web.StreamResponse:
    asked = parse_parts_request(call.query)
    page = await call.services.multipart.list_parts(
        call.query.get("uploadId", ""),
        call.bucket,
        call.key,
        asked.part_number_marker,
        asked.max_parts,
    )
    return xml_response(parts_result(call.bucket, asked, page))


async def list_uploads(call: S3Call) -> web.StreamResponse:
    asked = parse_uploads_request(call.query)
    page = await call.services.multipart.list_uploads(
        call.bucket,
        asked.prefix,
        asked.delimiter,
        asked.key_marker,
        asked.upload_id_marker,
        asked.max_uploads,
    )
    return xml_response(uploads_result(call.bucket, asked, page))


HANDLERS: S3Handlers = {
    Op.CREATE_UPLOAD: create_upload,
    Op.UPLOAD_PART: upload_part,
    Op.UPLOAD_PART_COPY: upload_part_copy,
    Op.COMPLETE_UPLOAD: complete_upload,
    Op.ABORT_UPLOAD: abort_upload,
    Op.LIST_PARTS: list_parts,
    Op.LIST_UPLOADS: list_uploads,
}
