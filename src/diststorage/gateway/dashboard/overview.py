"""The Overview screen (``/_/ui``): health, durability, repair, throughput, capacity."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from diststorage.gateway.dashboard.context import Screen, dashboard_of, render_page
from diststorage.gateway.dashboard.panels import health_panel


async def overview_page(request: web.Request) -> web.Response:
    services = dashboard_of(request).services
    context: dict[str, Any] = {"health": health_panel(services)}
    return await render_page(request, "overview.html", context, screen="overview")


def add_routes(app: web.Application) -> None:
    app.router.add_get("", overview_page)
    app.router.add_get("/", overview_page)


SCREEN = Screen("overview", "Overview", "", add_routes)
