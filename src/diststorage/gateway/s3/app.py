"""The S3 API as an aiohttp application: the access line and metrics, errors as S3 XML, the
guard, then one handler per operation."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from diststorage.core.errors import NotImplementedFeature
from diststorage.gateway.http.access import HttpMetrics, access_middleware
from diststorage.gateway.http.admission import close_if_refused_before_body
from diststorage.gateway.s3 import buckets, delete_objects, listing, multipart, objects
from diststorage.gateway.s3.call import S3_CALL, S3Handler
from diststorage.gateway.s3.errors import add_request_id, s3_errors
from diststorage.gateway.s3.guard import S3Guard
from diststorage.gateway.s3.routing import Op
from diststorage.gateway.services import Services

HANDLERS: Mapping[Op, S3Handler] = {
    **buckets.HANDLERS,
    **listing.HANDLERS,
    **delete_objects.HANDLERS,
    **objects.HANDLERS,
    **multipart.HANDLERS,
}


API = "s3"

_LISTINGS = frozenset(
    {Op.LIST_OBJECTS, Op.LIST_OBJECTS_V2, Op.LIST_UPLOADS, Op.LIST_PARTS, Op.LIST_BUCKETS}
)
_OBJECT_OPS = frozenset(
    {
        Op.PUT_OBJECT,
        Op.COPY_OBJECT,
        Op.GET_OBJECT,
        Op.HEAD_OBJECT,
        Op.DELETE_OBJECT,
        Op.GET_OBJECT_ACL,
        Op.CREATE_UPLOAD,
        Op.UPLOAD_PART,
        Op.UPLOAD_PART_COPY,
        Op.COMPLETE_UPLOAD,
        Op.ABORT_UPLOAD,
    }
)


def route_of(request: web.Request) -> str:
    """``object``, ``list``, ``bucket`` (the rest of the operations the guard named), or
    ``other``: a request refused before it was routed."""
    call = request.get(S3_CALL)
    if call is None:
        return "other"
    if call.op in _LISTINGS:
        return "list"
    return "object" if call.op in _OBJECT_OPS else "bucket"


async def dispatch(request: web.Request) -> web.StreamResponse:
    call = request[S3_CALL]
    handler = HANDLERS.get(call.op)
    if handler is None:
        raise NotImplementedFeature(f"{call.op} is not supported on this server")
    return await handler(call)


def build_s3_app(services: Services, metrics: HttpMetrics) -> web.Application:
    """The S3 front end, its requests counted in the gateway's ``metrics`` as api ``s3``."""
    guard = S3Guard(services)
    # The access middleware outermost (see api.app); the guard inside the error middleware, so
    # that its refusals are S3 error answers too.
    access = access_middleware(API, route_of, metrics)
    app = web.Application(middlewares=[access, s3_errors, guard.middleware])
    app.on_response_prepare.append(add_request_id)
    app.on_response_prepare.append(close_if_refused_before_body)
    app.router.add_route("*", "/{tail:.*}", dispatch, expect_handler=guard.expect_handler)
    return app
