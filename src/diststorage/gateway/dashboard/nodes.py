"""The Nodes screen (``/_/ui/nodes``): the capacity heatmap and the node table, and the
operator's actions on nodes: drain, activate, remove, rebalance.

An action is a POST (with the session's CSRF token, ``security``) that asks first: without
JavaScript the POST answers with a confirmation page whose form repeats it with
``confirm=yes``; with htmx the button asks in the browser (``hx-confirm``) and sends
``confirm=yes`` itself, and the answer is a line swapped in above the table. Each calls what
the admin routes call (``api.admin``, ``workers.lifecycle``, ``workers.rebalance``).
"""

from __future__ import annotations

import enum
from typing import Any

from aiohttp import web

from diststorage.core.errors import DiststorageError
from diststorage.gateway.api.admin import find_node, remove_node
from diststorage.gateway.dashboard.context import (
    Screen,
    dashboard_of,
    render_fragment,
    render_live_page,
    render_page,
    ui_url,
)
from diststorage.gateway.workers.lifecycle import set_node_lifecycle
from diststorage.gateway.workers.rebalance import plan_rebalance
from diststorage.meta import NodeLifecycle

PANELS = ["heatmap", "nodes", "capacity"]


class Action(enum.StrEnum):
    DRAIN = "drain"
    ACTIVATE = "activate"
    REMOVE = "remove"
    REBALANCE = "rebalance"


_QUESTIONS = {
    Action.DRAIN: "Drain {node}? It takes no new chunks, and repair moves every chunk off it.",
    Action.ACTIVATE: "Activate {node}? It takes new chunks again.",
    Action.REMOVE: "Remove {node} from the cluster? Only a node that holds no chunk in use "
    "can be removed: drain it first.",
    Action.REBALANCE: "Rebalance? Chunks are moved off nodes fuller than the mean.",
}


async def nodes_page(request: web.Request) -> web.Response:
    return await render_live_page(request, "nodes.html", PANELS, screen="nodes")


async def _perform(request: web.Request, action: Action, node_id: str) -> str:
    """Does it; returns what to tell the operator. Raises NodeNotFound, NodeInUse, ..."""
    dashboard = dashboard_of(request)
    services = dashboard.services
    if action == Action.REBALANCE:
        plan = await plan_rebalance(services.inventory, services.store.maintenance)
        dashboard.snapshots.chunk_counts.forget()
        return (
            f"Rebalance started: {plan.chunks} chunks ({plan.bytes} bytes) to move off "
            f"{len(plan.nodes)} node(s)."
        )
    view = find_node(services, node_id)
    name = view.info.address
    if action == Action.REMOVE:
        await remove_node(services, view, force=False)
        dashboard.snapshots.chunk_counts.forget()
        return f"Node {name} removed."
    lifecycle = NodeLifecycle.DRAINING if action == Action.DRAIN else NodeLifecycle.ACTIVE
    warning = await set_node_lifecycle(
        services.store.maintenance,
        services.inventory,
        view.info.node_id,
        lifecycle,
        services.settings.default_policy,
    )
    dashboard.snapshots.chunk_counts.forget()
    done = f"Node {name} is now {lifecycle}."
    return done if warning is None else f"{done} {warning}"


async def act(request: web.Request) -> web.StreamResponse:
    action = Action(request.match_info.get("action", Action.REBALANCE))
    node_id = request.match_info.get("node", "")
    form = await request.post()
    htmx = bool(request.headers.get("HX-Request"))
    if form.get("confirm") != "yes":
        name = find_node(dashboard_of(request).services, node_id).info.address if node_id else ""
        context: dict[str, Any] = {
            "question": _QUESTIONS[action].format(node=name),
            "action_url": request.path,
            "action": action.value,
        }
        return await render_page(request, "confirm.html", context, screen="nodes")
    try:
        message = await _perform(request, action, node_id)
    except DiststorageError as error:
        if not htmx:
            raise
        message = f"Refused: {error.message}"
    if htmx:
        return await render_fragment(request, "_action_result.html", {"message": message})
    raise web.HTTPSeeOther(ui_url("/nodes"))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/nodes", nodes_page)
    app.router.add_post(r"/nodes/{node:[0-9a-f]{1,64}}/{action:drain|activate|remove}", act)
    app.router.add_post("/rebalance", act)


SCREEN = Screen("nodes", "Nodes", "/nodes", add_routes)
