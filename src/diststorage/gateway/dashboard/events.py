"""The Events screen (``/_/ui/events``): what this gateway saw happen, newest first."""

from __future__ import annotations

from aiohttp import web

from diststorage.gateway.dashboard.context import Screen, render_live_page

PANELS = ["events"]


async def events_page(request: web.Request) -> web.Response:
    return await render_live_page(request, "events.html", PANELS, screen="events")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/events", events_page)


SCREEN = Screen("events", "Events", "/events", add_routes)
