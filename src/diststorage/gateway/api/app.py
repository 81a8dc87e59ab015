"""The native HTTP API as an aiohttp application: routes, error bodies and request metrics."""

from __future__ import annotations

from aiohttp import web

from diststorage.gateway.api.durability_metrics import DurabilityCollector
from diststorage.gateway.api.errors import json_errors
from diststorage.gateway.api.guard import RequestGuard
from diststorage.gateway.api.metrics import METRICS, ApiMetrics
from diststorage.gateway.api.routes import SERVICES, dispatch
from diststorage.gateway.http.admission import close_if_refused_before_body
from diststorage.gateway.services import Services


def build_http_app(services: Services) -> web.Application:
    """One application over the gateway's services; its request metrics are its own."""
    metrics = ApiMetrics(services.inventory)
    metrics.registry.register(DurabilityCollector(services))
    guard = RequestGuard(services.native_authenticator, services.settings.anonymous)
    # Metrics outermost, so they count the statuses the error middleware produced; the guard
    # inside the error middleware, so that its refusals are error answers too.
    app = web.Application(middlewares=[metrics.middleware, json_errors, guard.middleware])
    app[SERVICES] = services
    app[METRICS] = metrics
    app.on_response_prepare.append(close_if_refused_before_body)
    app.router.add_route("*", "/{tail:.*}", dispatch, expect_handler=guard.expect_handler)
    return app
