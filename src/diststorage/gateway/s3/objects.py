"""S3 handlers: PutObject, GetObject, HeadObject, DeleteObject and CopyObject.

Reads follow the native API's pipeline calls: conditions are judged on the stored object
before any byte is fetched, the first stripe is fetched before the status goes out (an object
that cannot be read gets an error answer, not a truncated body), and a failure after that cuts
the connection, the only way left to tell the client its body is short. HEAD answers a GET's
headers without fetching anything.
"""

from __future__ import annotations

import contextlib

from aiohttp import web

from diststorage.core.errors import ObjectNotFound
from diststorage.gateway.http.headers import parse_range_spec
from diststorage.gateway.http.streaming import send_stream
from diststorage.gateway.objects import DeleteOperation, inline_bytes
from diststorage.gateway.objects.multipart import read_span
from diststorage.gateway.s3.call import S3Call, S3Handlers
from diststorage.gateway.s3.conditions import Verdict, evaluate
from diststorage.gateway.s3.copy import copy_object
from diststorage.gateway.s3.object_responses import (
    Selection,
    read_headers,
    validator_headers,
)
from diststorage.gateway.s3.put_object import put_object
from diststorage.gateway.s3.routing import Op
from diststorage.gateway.s3.selection import part_number_of, selection_of
from diststorage.meta import ObjectInfo, ObjectLayout


def _not_modified(info: ObjectInfo) -> web.StreamResponse:
    return web.Response(status=304, headers=validator_headers(info))


def _response(call: S3Call, info: ObjectInfo, selection: Selection) -> web.StreamResponse:
    headers = read_headers(info, selection, call.headers, call.query)
    response = web.StreamResponse(status=selection.status, headers=headers)
    start, end = selection.bounds(info.size_bytes)
    response.content_length = end - start
    return response


async def _layout(call: S3Call, part_number: int | None, whole: bool) -> ObjectLayout:
    """The object's layout when its bytes or parts are needed, else just its info. A read
    of a range gets only the parts holding it: s3transfer reads a big object as many ranged
    GETs, each within one or two of its parts."""
    store = call.services.store
    if part_number is not None:
        return await store.get_layout(call.bucket, call.key)
    if whole:
        span = read_span(parse_range_spec(call.headers.get("Range")))
        return await store.get_layout(call.bucket, call.key, span)
    return ObjectLayout(await store.get_info(call.bucket, call.key), ())


async def head_object(call: S3Call) -> web.StreamResponse:
    part_number = part_number_of(call.query, call.headers)
    layout = await _layout(call, part_number, whole=False)
    if evaluate(call.headers, layout.info) is Verdict.NOT_MODIFIED:
        return _not_modified(layout.info)
    selection = selection_of(layout, part_number, call.headers.get("Range"))
    response = _response(call, layout.info, selection)
    await response.prepare(call.request)
    await response.write_eof()
    return response


async def get_object(call: S3Call) -> web.StreamResponse:
    part_number = part_number_of(call.query, call.headers)
    layout = await _layout(call, part_number, whole=True)
    info = layout.info
    if evaluate(call.headers, info) is Verdict.NOT_MODIFIED:
        return _not_modified(info)
    selection = selection_of(layout, part_number, call.headers.get("Range"))
    start, end = selection.bounds(info.size_bytes)
    if layout.inline_body is not None:
        headers = read_headers(info, selection, call.headers, call.query)
        body = inline_bytes(layout, start, end)
        return web.Response(status=selection.status, headers=headers, body=body)
    response = _response(call, info, selection)
    services = call.services
    with services.reads.reading(info.object_id):
        pieces = services.reader.stream(layout, start, end)
        await send_stream(call.request, response, pieces, f"{call.bucket}/{call.key}")
    return response


async def delete_object(call: S3Call) -> web.StreamResponse:
    """204 whether or not an object was there: S3's DeleteObject is idempotent."""
    with contextlib.suppress(ObjectNotFound):
        await call.services.writer.delete(DeleteOperation(call.bucket, call.key))
    return web.Response(status=204)


HANDLERS: S3Handlers = {
    Op.PUT_OBJECT: put_object,
    Op.GET_OBJECT: get_object,
    Op.HEAD_OBJECT: head_object,
    Op.DELETE_OBJECT: delete_object,
    Op.COPY_OBJECT: copy_object,
}
