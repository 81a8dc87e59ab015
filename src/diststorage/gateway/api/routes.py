"""HTTP routes of the gateway. Handlers are thin: parse, call the pipelines, shape the answer."""

from __future__ import annotations

import logging
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from diststorage.core.errors import DiststorageError, MethodNotAllowed
from diststorage.gateway.api.admin import system_route
from diststorage.gateway.api.body import RequestBody
from diststorage.gateway.api.parse import (
    DEFAULT_CONTENT_TYPE,
    SYSTEM_PREFIX,
    ByteRange,
    parse_declared_size,
    parse_key,
    parse_listing,
    parse_range,
    parse_redundancy,
)
from diststorage.gateway.objects import PutRequest, inline_bytes
from diststorage.gateway.services import Services
from diststorage.meta import DEFAULT_NAMESPACE, MAX_LIST_LIMIT, ObjectInfo

log = logging.getLogger(__name__)

OBJECT_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
SERVICES: web.AppKey[Services] = web.AppKey("services", Services)


def _object_json(info: ObjectInfo) -> dict[str, Any]:
    return {
        "key": info.key,
        "size": info.size_bytes,
        "md5": info.md5_hex,
        "etag": f'"{info.md5_hex}"',
        "content_type": info.content_type,
        "redundancy": info.policy,
        "last_modified": info.created_at.isoformat(),
    }


def _object_headers(info: ObjectInfo) -> dict[str, str]:
    return {
        "ETag": f'"{info.md5_hex}"',
        "Content-Type": info.content_type,
        "Last-Modified": format_datetime(info.created_at, usegmt=True),
        "Accept-Ranges": "bytes",
        "X-Redundancy": info.policy,
    }


async def dispatch(request: web.Request) -> web.StreamResponse:
    path = request.raw_path.split("?", 1)[0]
    if path == "/":
        _allow(request, READ_METHODS)
        return await list_objects(request)
    if path.startswith("/" + SYSTEM_PREFIX):
        return await system_route(
            request, request.app[SERVICES], path.removeprefix("/" + SYSTEM_PREFIX)
        )
    _allow(request, OBJECT_METHODS)
    key = parse_key(request.raw_path)
    handler = {
        "GET": get_object,
        "HEAD": get_object,
        "PUT": put_object,
        "POST": put_object,
        "DELETE": delete_object,
    }[request.method]
    return await handler(request, key)


def _allow(request: web.Request, methods: frozenset[str]) -> None:
    if request.method not in methods:
        raise MethodNotAllowed(f"{request.method} is not allowed here")


async def put_object(request: web.Request, key: str) -> web.StreamResponse:
    services = request.app[SERVICES]
    settings = services.settings
    declared = parse_declared_size(
        request.content_length,
        request.headers.get("Transfer-Encoding"),
        settings.max_object_bytes,
    )
    put = PutRequest(
        namespace=DEFAULT_NAMESPACE,
        key=key,
        content_type=request.headers.get("Content-Type") or DEFAULT_CONTENT_TYPE,
        policy=parse_redundancy(
            request.headers.get("X-Redundancy"),
            settings.default_policy,
            declared,
            settings.small_object_bytes,
        ),
        declared_size=declared,
        replace=request.method == "PUT",
        default_policy=request.headers.get("X-Redundancy") is None,
    )
    info = await services.writer.write(
        put, RequestBody(request, declared, settings.max_object_bytes)
    )
    return web.json_response(_object_json(info), status=201, headers={"ETag": f'"{info.md5_hex}"'})


async def get_object(request: web.Request, key: str) -> web.StreamResponse:
    services = request.app[SERVICES]
    if request.method == "HEAD":
        info = await services.store.get_info(DEFAULT_NAMESPACE, key)
        byte_range = parse_range(request.headers.get("Range"), info.size_bytes)
        response = _object_response(info, byte_range)
        await response.prepare(request)
        await response.write_eof()
        return response
    layout = await services.store.get_layout(DEFAULT_NAMESPACE, key)
    byte_range = parse_range(request.headers.get("Range"), layout.info.size_bytes)
    start = 0 if byte_range is None else byte_range.start
    end = layout.info.size_bytes if byte_range is None else byte_range.end
    if layout.inline_body is not None:
        status, headers = _status_and_headers(layout.info, byte_range)
        return web.Response(status=status, headers=headers, body=inline_bytes(layout, start, end))
    response = _object_response(layout.info, byte_range)
    with services.reads.reading(layout.info.object_id):
        pieces = services.reader.stream(layout, start, end)
        # Fetch the first stripe before committing to a status: an object that cannot be
        # read at all gets an error answer, not a truncated body.
        first = await anext(pieces, b"")
        await response.prepare(request)
        try:
            if first:
                await response.write(first)
            async for piece in pieces:
                await response.write(piece)
        except DiststorageError as error:
            # The status line is gone already; cutting the connection short is the only way
            # left to tell the client that what it got is not the whole object.
            log.error("GET %s failed after %s: %s", key, response.status, error)
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
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


async def delete_object(request: web.Request, key: str) -> web.StreamResponse:
    services = request.app[SERVICES]
    deleted = await services.store.delete_object(DEFAULT_NAMESPACE, key)
    services.janitor.delete_after_reads(deleted.object_id, deleted.chunks)
    return web.Response(status=204)


async def list_objects(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    listing = parse_listing(dict(request.query), MAX_LIST_LIMIT)
    page = await services.store.list_objects(
        DEFAULT_NAMESPACE, listing.prefix, listing.after, listing.limit
    )
    objects = [_object_json(info) for info in page.objects]
    return web.json_response(
        {
            "objects": objects,
            "truncated": page.truncated,
            "next_after": objects[-1]["key"] if page.truncated and objects else None,
        }
    )
