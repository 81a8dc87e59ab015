"""The Repair screen (``/_/ui/repair``): the repair card, the most-at-risk segments, garbage
collection's counters."""

from __future__ import annotations

from aiohttp import web

from diststorage.gateway.dashboard.context import Screen, render_live_page

PANELS = ["repair", "durability", "at_risk", "garbage"]


async def repair_page(request: web.Request) -> web.Response:
    return await render_live_page(request, "repair.html", PANELS, screen="repair")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/repair", repair_page)


SCREEN = Screen("repair", "Repair", "/repair", add_routes)
