"""The web dashboard as an aiohttp application, mounted at ``/_/ui`` in the native API's.

``mount_dashboard(native_app, services, events)`` builds it: the Jinja2 templates, the static
files, the sessions, the live updates, and each screen's routes (``SCREENS``, in the order of
the navigation bar; a new screen is a module with a ``SCREEN`` added here, see ``context``).
"""

from __future__ import annotations

from aiohttp import web

from diststorage.core.clock import SYSTEM_CLOCK
from diststorage.gateway.api.metrics import METRICS
from diststorage.gateway.api.parse import UI_PATH
from diststorage.gateway.dashboard import events as events_screen
from diststorage.gateway.dashboard import live, login, nodes, objects, overview, repair
from diststorage.gateway.dashboard.context import DASHBOARD, Dashboard, Screen
from diststorage.gateway.dashboard.live import LIVE, LiveUpdates
from diststorage.gateway.dashboard.panels import ChunkCounts, Snapshots
from diststorage.gateway.dashboard.security import (
    add_security_headers,
    html_errors,
    require_session,
)
from diststorage.gateway.dashboard.session import Sessions
from diststorage.gateway.dashboard.static import StaticAssets
from diststorage.gateway.dashboard.templating import Templates
from diststorage.gateway.dashboard.throughput import Throughput
from diststorage.gateway.dashboard.watcher import EventWatcher
from diststorage.gateway.datapath import NodeStats
from diststorage.gateway.events import EventLog
from diststorage.gateway.services import Services

SCREENS: tuple[Screen, ...] = (
    overview.SCREEN,
    nodes.SCREEN,
    repair.SCREEN,
    objects.SCREEN,
    events_screen.SCREEN,
    login.SCREEN,
)
STATIC_URL = UI_PATH + "/static"


def build_dashboard(
    services: Services, events: EventLog, throughput: Throughput, node_stats: NodeStats
) -> web.Application:
    """The dashboard's application, paths relative to ``/_/ui``."""
    assets = StaticAssets(STATIC_URL)
    templates = Templates(assets, UI_PATH)
    counts = ChunkCounts(services, SYSTEM_CLOCK)
    snapshots = Snapshots(services, throughput, events, counts, node_stats)
    dashboard = Dashboard(
        services=services,
        sessions=Sessions(services.accounts.master, services.keys),
        assets=assets,
        templates=templates,
        events=events,
        screens=SCREENS,
        snapshots=snapshots,
    )
    # Errors outermost, so that a refusal below is answered like any other error.
    app = web.Application(middlewares=[html_errors, require_session])
    app[DASHBOARD] = dashboard
    watcher = EventWatcher(services, events, node_stats)
    app[LIVE] = LiveUpdates(snapshots, templates, throughput, watcher)
    app.on_response_prepare.append(add_security_headers)
    app.router.add_get("/static/{name:.+}", assets.handle)
    live.add_routes(app)
    for screen in SCREENS:
        screen.add_routes(app)
    return app


def mount_dashboard(native: web.Application, services: Services, events: EventLog) -> None:
    """Adds the dashboard at ``/_/ui`` to the native API's application, its throughput read
    from that application's metrics. Its resource is more specific than the API's catch-all
    route, so aiohttp resolves ``/_/ui/...`` to it first."""
    metrics = native[METRICS]
    throughput = Throughput(metrics.throughput_collectors())
    dashboard = build_dashboard(services, events, throughput, metrics.data_path.stats)
    native.add_subapp(UI_PATH, dashboard)
