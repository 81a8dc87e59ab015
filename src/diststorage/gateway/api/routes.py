"""HTTP routes of the gateway. Handlers are thin: parse, call the pipelines, shape the answer."""

from __future__ import annotations

from email.utils import format_datetime

from aiohttp import web

from diststorage.core.errors import MethodNotAllowed
from diststorage.gateway.api.admin import system_route
from diststorage.gateway.api.callers import verified_body
from diststorage.gateway.api.documents import object_json
from diststorage.gateway.api.openapi import OPENAPI_PATH, native_openapi
from diststorage.gateway.api.parse import (
    READ_METHODS,
    SYSTEM_PREFIX,
    is_system_path,
    parse_object_request,
)
from diststorage.gateway.http.streaming import send_stream
from diststorage.gateway.objects import (
    ByteRange,
    DeleteOperation,
    GetOperation,
    HeadOperation,
    ListOperation,
    PutOperation,
    inline_bytes,
)
from diststorage.gateway.objects.multipart import read_span
from diststorage.gateway.objects.operations import resolve_range
from diststorage.gateway.services import Services
from diststorage.meta import ObjectInfo

SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "ETag": f'"{info.etag}"',
        "Content-Type": info.content_type,
        "Last-Modified": format_datetime(info.created_at, usegmt=True),
        "Accept-Ranges": "bytes",
        "X-Redundancy": info.policy,
    }


async def dispatch(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    if is_system_path(request.raw_path):
        path = request.raw_path.split("?", 1)[0]
        if path == OPENAPI_PATH:
            return openapi_document(request)
        return await system_route(request, services, path.removeprefix("/" + SYSTEM_PREFIX))
    operation = parse_object_request(
        request.method,
        request.raw_path,
        request.query,
        request.headers,
        request.content_length,
        services.settings.max_object_bytes,
    )
    match operation:
        case PutOperation():
            return await put_object(request, services, operation)
        case GetOperation():
            return await get_object(request, services, operation)
        case HeadOperation():
            return await head_object(request, services, operation)
        case DeleteOperation():
            return await delete_object(services, operation)
        case ListOperation():
            return await list_objects(services, operation)


def openapi_document(request: web.Request) -> web.StreamResponse:
    """The native API's OpenAPI description (``api.openapi``)."""
    if request.method not in READ_METHODS:
        raise MethodNotAllowed(f"{request.method} is not allowed on {OPENAPI_PATH}")
    return web.json_response(native_openapi())


async def put_object(
    request: web.Request, services: Services, operation: PutOperation
) -> web.StreamResponse:
    max_bytes = services.settings.max_object_bytes
    body = verified_body(request, operation.declared_size, max_bytes)
    info = await services.writer.write(operation, body)
    return web.json_response(object_json(info), status=201, headers={"ETag": f'"{info.etag}"'})


async def head_object(
    request: web.Request, services: Services, operation: HeadOperation
) -> web.StreamResponse:
    info = await services.store.get_info(operation.namespace, operation.key)
    response = _object_response(info, resolve_range(operation.range, info.size_bytes))
    await response.prepare(request)
    await response.write_eof()
    return response


async def get_object(
    request: web.Request, services: Services, operation: GetOperation
) -> web.StreamResponse:
    span = read_span(operation.range)
    layout = await services.store.get_layout(operation.namespace, operation.key, span)
    byte_range = resolve_range(operation.range, layout.info.size_bytes)
    start = 0 if byte_range is None else byte_range.start
    end = layout.info.size_bytes if byte_range is None else byte_range.end
    if layout.inline_body is not None:
        status, headers = _status_and_headers(layout.info, byte_range)
        return web.Response(status=status, headers=headers, body=inline_bytes(layout, start, end))
    response = _object_response(layout.info, byte_range)
    with services.reads.reading(layout.info.object_id):
        pieces = services.reader.stream(layout, start, end)
        await send_stream(request, response, pieces, operation.key)
    return response


def _status_and_headers(
    info: ObjectInfo, byte_range: ByteRange | None
) -> tuple[int, dict[str, str]]:
    headers = _object_headers(info)
    if byte_range is None:
        return 200, headers
    headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end - 1}/{info.size_bytes}"
    return 206, headers


def _object_response(info: ObjectInfo, byte_range: ByteRange | None) -> web.StreamResponse:
    status, headers = _status_and_headers(info, byte_range)
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = info.size_bytes if byte_range is None else byte_range.length
    return response


async def delete_object(services: Services, operation: DeleteOperation) -> web.StreamResponse:
    await services.writer.delete(operation)
    return web.Response(status=204)


async def list_objects(services: Services, operation: ListOperation) -> web.StreamResponse:
    page = await services.store.list_objects(
        operation.namespace, operation.prefix, operation.after, operation.limit
    )
    objects = [object_json(info) for info in page.objects]
    return web.json_response(
        {
            "objects": objects,
            "truncated": page.truncated,
            "next_after": objects[-1]["key"] if page.truncated and objects else None,
        }
    )
