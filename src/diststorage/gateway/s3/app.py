"""The S3 API as an aiohttp application: errors as S3 XML, the guard, then one handler per
operation."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from diststorage.core.errors import NotImplementedFeature
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


async def dispatch(request: web.Request) -> web.StreamResponse:
    call = request[S3_CALL]
    handler = HANDLERS.get(call.op)
    if handler is None:
        raise NotImplementedFeature(f"{call.op} is not supported on this server")
    return await handler(call)


def build_s3_app(services: Services) -> web.Application:
    guard = S3Guard(services)
    # The guard inside the error middleware, so that its refusals are S3 error answers too.
    app = web.Application(middlewares=[s3_errors, guard.middleware])
    app.on_response_prepare.append(add_request_id)
    app.on_response_prepare.append(close_if_refused_before_body)
    # [\s\S], not ".": a key may hold a line break, which "." does not match (a 404 before).
    app.router.add_route("*", r"/{tail:[\s\S]*}", dispatch, expect_handler=guard.expect_handler)
    return app
