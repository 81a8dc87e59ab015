"""The Overview screen (``/_/ui``): health, durability, repair, throughput, capacity."""

from __future__ import annotations

from aiohttp import web

from diststorage.gateway.dashboard.context import Screen, render_live_page

PANELS = ["health", "durability", "repair", "throughput", "capacity", "heatmap"]


async def overview_page(request: web.Request) -> web.Response:
    return await render_live_page(request, "overview.html", PANELS, screen="overview")


def add_routes(app: web.Application) -> None:
    app.router.add_get("", overview_page)
    app.router.add_get("/", overview_page)


SCREEN = Screen("overview", "Overview", "", add_routes)
