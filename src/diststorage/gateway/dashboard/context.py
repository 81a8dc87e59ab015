"""What every dashboard screen uses: the dashboard's parts (``DASHBOARD`` on the app), the
session of the request (``SESSION``), the screen registry's shape, and the one way to answer
with a page or a fragment.

A screen is a module with a ``SCREEN = Screen(...)`` whose ``add_routes(app)`` adds its
routes to the dashboard's application (paths relative to ``/_/ui``; ``app[DASHBOARD]`` holds
the services and templates); ``app.SCREENS`` lists them in the order of the navigation bar.
A page handler answers ``await render_page(request, "nodes.html", {...})``; its template
extends ``base.html`` and fills ``{% block content %}``. Forms that POST carry
``{{ csrf_input() }}``; htmx requests send the token in a header (set once on ``<body>``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from diststorage.gateway.api.parse import UI_PATH
from diststorage.gateway.dashboard.panels import PANELS, Snapshots
from diststorage.gateway.dashboard.session import CSRF_FIELD, CSRF_HEADER, Session, Sessions
from diststorage.gateway.dashboard.static import StaticAssets
from diststorage.gateway.dashboard.templating import Templates
from diststorage.gateway.events import EventLog
from diststorage.gateway.services import Services

HTML = "text/html"


@dataclass(frozen=True, slots=True)
class Screen:
    """One entry of the navigation bar and the routes behind it."""

    key: str  # what a page passes as ``screen`` to be shown as current
    label: str
    path: str  # relative to /_/ui: "" for the overview, "/nodes", ...
    add_routes: Callable[[web.Application], None]


@dataclass(slots=True)
class Dashboard:
    """The dashboard's parts, built once per gateway (``app.build_dashboard``)."""

    services: Services
    sessions: Sessions
    assets: StaticAssets
    templates: Templates
    events: EventLog
    screens: tuple[Screen, ...]
    snapshots: Snapshots


DASHBOARD: web.AppKey[Dashboard] = web.AppKey("dashboard", Dashboard)
SESSION: web.RequestKey[Session] = web.RequestKey("dashboard_session", Session)


def dashboard_of(request: web.Request) -> Dashboard:
    return request.config_dict[DASHBOARD]


def session_of(request: web.Request) -> Session:
    """The signed-in session; set by the dashboard's middleware on every screen's request."""
    return request[SESSION]


def ui_url(path: str = "") -> str:
    return UI_PATH + path


async def page_context(request: web.Request, screen: str) -> dict[str, Any]:
    """What ``base.html`` needs: the navigation, who is signed in, the CSRF token."""
    dashboard = dashboard_of(request)
    session = request.get(SESSION)
    token = dashboard.sessions.csrf_token(session) if session is not None else ""
    return {
        "screen": screen,
        "nav": [(s.key, s.label, ui_url(s.path)) for s in dashboard.screens if s.label],
        "principal": session.principal if session is not None else None,
        "csrf_token": token,
        "csrf_field": CSRF_FIELD,
        "csrf_header": CSRF_HEADER,
        "gateway_id": dashboard.services.lease.holder,
    }


async def render_page(
    request: web.Request,
    template: str,
    context: dict[str, Any],
    *,
    screen: str,
    status: int = 200,
) -> web.Response:
    """A whole page: ``template`` (which extends base.html) with ``context`` and the page's
    own (``page_context``)."""
    dashboard = dashboard_of(request)
    full = {**await page_context(request, screen), **context}
    body = await dashboard.templates.render(template, full)
    return web.Response(text=body, content_type=HTML, charset="utf-8", status=status)


async def render_fragment(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    """A partial alone (what an htmx request swaps in)."""
    body = await dashboard_of(request).templates.render(template, context)
    return web.Response(text=body, content_type=HTML, charset="utf-8", status=status)


async def render_live_page(
    request: web.Request,
    template: str,
    panels: list[str],
    *,
    screen: str,
    context: dict[str, Any] | None = None,
) -> web.Response:
    """A page of live panels: each rendered now (the page works without JavaScript), then
    kept up to date over ``/_/ui/live`` (``live``). The template puts each panel in an
    element ``<div id="NAME" sse-swap="NAME">{% include "_NAME.html" %}</div>`` inside
    ``<div hx-ext="sse" sse-connect="{{ live_url }}">``."""
    dashboard = dashboard_of(request)
    snapshot = await dashboard.snapshots.gather(PANELS[name] for name in panels)
    full = {**snapshot, **(context or {}), "live_url": ui_url("/live?panels=" + ",".join(panels))}
    return await render_page(request, template, full, screen=screen)
