"""The native HTTP API as an aiohttp application: routes, error bodies and request metrics."""

from __future__ import annotations

from aiohttp import web

from diststorage.gateway.api.durability_metrics import DurabilityCollector
from diststorage.gateway.api.errors import json_errors
from diststorage.gateway.api.guard import RequestGuard
from diststorage.gateway.api.metrics import METRICS, ApiMetrics
from diststorage.gateway.api.parse import is_system_path
from diststorage.gateway.api.routes import SERVICES, dispatch
from diststorage.gateway.http.access import SYSTEM_ROUTE, add_request_id_header
from diststorage.gateway.http.admission import close_if_refused_before_body
from diststorage.gateway.services import Services

API = "native"


def route_of(request: web.Request) -> str:
    """``system`` (``/_/``), ``list`` (``/``) or ``object``."""
    if is_system_path(request.raw_path):
        return SYSTEM_ROUTE
    return "list" if request.raw_path.partition("?")[0] == "/" else "object"


def build_http_app(services: Services, metrics: ApiMetrics) -> web.Application:
    """One application over the gateway's services, counted in the gateway's ``metrics``,
    on whose registry it puts the durability, repair and GC figures."""
    metrics.registry.register(DurabilityCollector(services))
    guard = RequestGuard(services.native_authenticator, services.settings.anonymous)
    # The access middleware outermost, so that it counts the statuses the error middleware
    # produced and every line inside runs under the request's id; the guard inside the error
    # middleware, so that its refusals are error answers too.
    app = web.Application(
        middlewares=[metrics.middleware(API, route_of), json_errors, guard.middleware]
    )
    app[SERVICES] = services
    app[METRICS] = metrics
    app.on_response_prepare.append(add_request_id_header)
    app.on_response_prepare.append(close_if_refused_before_body)
    app.router.add_route("*", "/{tail:.*}", dispatch, expect_handler=guard.expect_handler)
    return app
