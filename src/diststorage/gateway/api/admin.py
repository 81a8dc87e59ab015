"""System routes under ``/_/``: health, nodes and their lifecycle, repair, rebalancing,
metrics, and the accounts' admin routes (``/_/admin/…``, see accounts_admin). Parsed into a
typed route first, like object requests."""

from __future__ import annotations

import enum
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from diststorage.core.errors import (
    InvalidKey,
    MethodNotAllowed,
    NodeInUse,
    NodeNotFound,
    NodePending,
)
from diststorage.gateway.api.accounts_admin import admin_route, is_admin_path
from diststorage.gateway.api.metrics import METRICS
from diststorage.gateway.api.object_layout import layout_path_key, object_layout, parse_layout_query
from diststorage.gateway.api.parse import SYSTEM_PREFIX
from diststorage.gateway.inventory import NodeView
from diststorage.gateway.services import Services
from diststorage.gateway.workers.durability import repair_block_bytes, repair_eta_s
from diststorage.gateway.workers.lease import WORKERS_LEASE
from diststorage.gateway.workers.lifecycle import set_node_lifecycle
from diststorage.gateway.workers.progress import read_figures
from diststorage.gateway.workers.rebalance import plan_rebalance
from diststorage.meta import NodeLifecycle

_NODE_ROUTE = re.compile(r"^nodes/(?P<node>[0-9a-f]{1,64})(?:/(?P<action>drain|activate|accept))?$")
_READ = frozenset({"GET", "HEAD"})


class SystemEndpoint(enum.Enum):
    """Each system route, with the methods it answers."""

    HEALTH = ("health", _READ)
    NODES = ("nodes", _READ)
    REPAIR = ("repair", _READ)
    METRICS = ("metrics", _READ)
    REBALANCE = ("rebalance", frozenset({"POST"}))
    NODE = ("node", frozenset({"GET", "HEAD", "DELETE"}))
    NODE_ACTION = ("node-action", frozenset({"POST"}))
    NODE_ACCEPT = ("node-accept", frozenset({"POST"}))
    # Where an object's shards are (``objects/{key}/layout``, see object_layout).
    OBJECT_LAYOUT = ("object-layout", _READ)
    # Keys, buckets and grants: its own table of routes and methods (accounts_admin).
    ADMIN = ("admin", frozenset({"GET", "HEAD", "POST", "DELETE"}))

    @property
    def methods(self) -> frozenset[str]:
        return self.value[1]


# Endpoints whose path is their name.
_FIXED = {
    e.value[0]: e
    for e in SystemEndpoint
    if e
    not in (
        SystemEndpoint.NODE,
        SystemEndpoint.NODE_ACTION,
        SystemEndpoint.NODE_ACCEPT,
        SystemEndpoint.ADMIN,
        SystemEndpoint.OBJECT_LAYOUT,
    )
}


@dataclass(frozen=True, slots=True)
class SystemRoute:
    endpoint: SystemEndpoint
    node_id: str = ""
    lifecycle: NodeLifecycle | None = None  # what a node action sets
    path: str = ""  # what follows ``/_/``
    key: str = ""  # an object's key, still percent-encoded


def parse_system_route(path: str) -> SystemRoute:
    """``path`` is what follows ``/_/``; raises InvalidKey for anything unknown."""
    fixed = _FIXED.get(path)
    if fixed is not None:
        return SystemRoute(fixed, path=path)
    if is_admin_path(path):
        return SystemRoute(SystemEndpoint.ADMIN, path=path)
    key = layout_path_key(path)
    if key is not None:
        return SystemRoute(SystemEndpoint.OBJECT_LAYOUT, path=path, key=key)
    match = _NODE_ROUTE.match(path)
    if match is not None:
        if match["action"] == "accept":
            return SystemRoute(SystemEndpoint.NODE_ACCEPT, match["node"], path=path)
        if match["action"]:
            drain = match["action"] == "drain"
            lifecycle = NodeLifecycle.DRAINING if drain else NodeLifecycle.ACTIVE
            return SystemRoute(SystemEndpoint.NODE_ACTION, match["node"], lifecycle, path)
        return SystemRoute(SystemEndpoint.NODE, match["node"], path=path)
    raise InvalidKey(f"keys under {SYSTEM_PREFIX!r} are reserved for system routes")


_Handler = Callable[[web.Request, Services, SystemRoute], Awaitable[web.StreamResponse]]


async def system_route(request: web.Request, services: Services, path: str) -> web.StreamResponse:
    route = parse_system_route(path)
    if request.method not in route.endpoint.methods:
        raise MethodNotAllowed(f"{request.method} is not allowed on /{SYSTEM_PREFIX}{path}")
    return await _HANDLERS[route.endpoint](request, services, route)


async def _metrics(request: web.Request, services: Services, route: SystemRoute) -> web.Response:
    return await request.app[METRICS].render()


async def _health_route(
    request: web.Request, services: Services, route: SystemRoute
) -> web.Response:
    return _health(services)


async def _nodes(request: web.Request, services: Services, route: SystemRoute) -> web.Response:
    referenced = await services.store.maintenance.chunks_by_node()
    return web.json_response(
        [node_json(services, v, referenced) for v in services.inventory.views()]
    )


async def _repair(request: web.Request, services: Services, route: SystemRoute) -> web.Response:
    return web.json_response(await repair_status(services))


async def _rebalance(request: web.Request, services: Services, route: SystemRoute) -> web.Response:
    plan = await plan_rebalance(services.inventory, services.store.maintenance)
    return web.json_response(
        {"chunks_to_move": plan.chunks, "bytes_to_move": plan.bytes, "from_nodes": plan.nodes},
        status=202,
    )


async def _node_action(
    request: web.Request, services: Services, route: SystemRoute
) -> web.Response:
    view = find_node(services, route.node_id)
    assert route.lifecycle is not None
    if view.lifecycle == NodeLifecycle.PENDING:
        raise NodePending(
            f"node {view.info.node_id} is pending: accept it first "
            f"(`diststorage node accept {view.info.node_id}`)"
        )
    warning = await set_node_lifecycle(
        services.store.maintenance,
        services.inventory,
        view.info.node_id,
        route.lifecycle,
        services.settings.default_policy,
    )
    view = find_node(services, route.node_id)
    referenced = await services.store.maintenance.chunks_by_node()
    body = node_json(services, view, referenced)
    if warning is not None:
        body["warning"] = warning
    return web.json_response(body, status=202)


async def _node_accept(
    request: web.Request, services: Services, route: SystemRoute
) -> web.Response:
    """Admits a pending node (manual admission); an admitted node is left as it is."""
    view = find_node(services, route.node_id)
    node_id = view.info.node_id
    if await services.store.maintenance.accept_node(node_id) is None:
        raise NodeNotFound(f"no node with id {route.node_id!r}")
    services.inventory.accept(node_id)
    referenced = await services.store.maintenance.chunks_by_node()
    return web.json_response(
        node_json(services, find_node(services, node_id), referenced), status=202
    )


async def _node(request: web.Request, services: Services, route: SystemRoute) -> web.Response:
    view = find_node(services, route.node_id)
    if request.method == "DELETE":
        await remove_node(services, view, request.query.get("force") == "true")
        return web.Response(status=204)
    referenced = await services.store.maintenance.chunks_by_node()
    return web.json_response(node_json(services, view, referenced))


async def _admin(
    request: web.Request, services: Services, route: SystemRoute
) -> web.StreamResponse:
    return await admin_route(request, services, route.path)


async def _object_layout(
    request: web.Request, services: Services, route: SystemRoute
) -> web.Response:
    query = parse_layout_query(route.key, request.query)
    return web.json_response(await object_layout(services, query))


_HANDLERS: dict[SystemEndpoint, _Handler] = {
    SystemEndpoint.OBJECT_LAYOUT: _object_layout,
    SystemEndpoint.ADMIN: _admin,
    SystemEndpoint.METRICS: _metrics,
    SystemEndpoint.HEALTH: _health_route,
    SystemEndpoint.NODES: _nodes,
    SystemEndpoint.REPAIR: _repair,
    SystemEndpoint.REBALANCE: _rebalance,
    SystemEndpoint.NODE_ACTION: _node_action,
    SystemEndpoint.NODE_ACCEPT: _node_accept,
    SystemEndpoint.NODE: _node,
}


def find_node(services: Services, node_id: str) -> NodeView:
    matches = [v for v in services.inventory.views() if v.info.node_id.startswith(node_id)]
    if len(matches) != 1:
        problem = "no node" if not matches else f"{len(matches)} nodes"
        raise NodeNotFound(f"{problem} with id {node_id!r}")
    return matches[0]


async def remove_node(services: Services, view: NodeView, force: bool) -> None:
    node_id = view.info.node_id
    maintenance = services.store.maintenance
    chunks, _ = (await maintenance.chunks_by_node()).get(node_id, (0, 0))
    if chunks and not force:
        raise NodeInUse(
            f"node {node_id} still holds {chunks} chunks in use: drain it first, or force "
            "the removal (`node remove --force`, ?force=true) to rebuild them elsewhere"
        )
    if chunks:
        await maintenance.queue_segments_on_nodes([node_id])
    await maintenance.forget_node(node_id)
    services.inventory.forget(node_id)


def _health(services: Services) -> web.Response:
    body = health_status(services)
    return web.json_response(body, status=503 if body["status"] == "down" else 200)


def health_status(services: Services) -> dict[str, Any]:
    """``/_/health``'s body: ok with every shard writable, degraded while writes still
    succeed, down when they cannot."""
    views = services.inventory.views()
    policy = services.settings.default_policy
    live = sum(1 for v in views if v.live)
    writable = services.inventory.writable_count()
    healthy = writable >= policy.min_write_nodes
    body = {
        "status": "ok" if writable >= policy.total_shards else "degraded" if healthy else "down",
        "live_nodes": live,
        "writable_nodes": writable,
        "total_nodes": len(views),
        "needed_nodes": policy.min_write_nodes,
        "full_redundancy_nodes": policy.total_shards,
        "redundancy": policy.spec,
    }
    return body


def node_json(
    services: Services, view: NodeView, referenced: dict[str, tuple[int, int]]
) -> dict[str, Any]:
    info = view.info
    chunks_in_use, bytes_in_use = referenced.get(info.node_id, (0, 0))
    scrub = services.scrub_status.get(info.node_id)
    return {
        "id": info.node_id,
        "address": info.address,
        "state": view.state,
        "lifecycle": view.lifecycle,
        # Safe to remove: nothing stored there is needed any more.
        "drained": view.lifecycle == NodeLifecycle.DRAINING and chunks_in_use == 0,
        "capacity": info.capacity_bytes,
        "used": info.used_bytes,
        "free": info.free_bytes,
        "chunks": info.chunk_count,
        "chunks_in_use": chunks_in_use,
        "bytes_in_use": bytes_in_use,
        "last_heartbeat": info.last_heartbeat.isoformat(),
        "scrub": None
        if scrub is None
        else {
            "verified_bytes": scrub.verified_bytes,
            "corrupt_found": scrub.corrupt_found,
            "passes_completed": scrub.passes_completed,
            "last_pass_finished": scrub.last_pass_finished or None,
        },
    }


async def repair_status(services: Services) -> dict[str, Any]:
    repair = services.repair
    report = await services.durability.assess()
    backlog = report.backlog
    leader, published = await _current_leader(services)
    leads = services.lease.is_leader
    rate = repair.meter.per_second()
    eta_s = None
    if rate > 0:
        eta_s = repair_eta_s(
            backlog.stripes_below_target, repair_block_bytes(services.settings), rate
        )
    body: dict[str, Any] = {
        "enabled": services.settings.repair_enabled,
        "leader": leader,
        "this_gateway": services.lease.holder,
        "this_gateway_leads": leads,
        # Repair and GC run on the leader only. The backlog and durability figures come from
        # the database and are the cluster's on every gateway; the state, counters, rate and
        # ETA are this gateway's own, the cluster's only where it leads.
        "counters_scope": "cluster" if leads else "this_gateway",
        "state": repair.state.value,
        "stripes_below_target": backlog.stripes_below_target,
        # How many more shards the worst-off short segment can lose and stay readable.
        "fewest_spare_shards": backlog.fewest_spare_shards,
        "stripes_queued": backlog.stripes_queued,
        "segments_queued": backlog.segments_queued,
        "segments_unrecoverable": len(repair.unrecoverable),
        # Chunk files the audit found gone from their node's disk (marked damaged, repaired).
        "chunks_found_missing": services.collector.missing_found,
        "bytes_repaired": repair.meter.total,
        "chunks_repaired": repair.counters.chunks_repaired,
        "segments_repaired": repair.counters.segments_repaired,
        "rate_bytes_per_s": round(rate, 1),
        "bandwidth_limit_bytes_per_s": services.settings.repair_bytes_per_s,
        "eta_s": None if eta_s is None else round(eta_s, 1),
        "unavailable_nodes": list(report.unavailable_nodes),
        "durability": report.histogram_json(),
        "garbage": {
            "uploads_collected": services.collector.uploads_collected,
            "orphans_deleted": services.collector.orphans_deleted,
            "chunks_deleted": services.collector.garbage_deleted,
        },
    }
    if not leads:
        body["counters_note"] = (
            "this gateway does not lead the background workers: its repair state, counters, "
            "rate and ETA are its own, not the cluster's; "
            + (
                "no gateway leads right now"
                if leader is None
                else f"leader_figures are what the leader, {leader}, last published"
            )
        )
        body["leader_figures"] = _with_eta(published, backlog.stripes_below_target, services)
    return body


async def _current_leader(services: Services) -> tuple[str | None, dict[str, Any] | None]:
    """The gateway whose workers' lease has not lapsed and the figures it published with its
    last renewal; (None, None) while nobody holds one."""
    record = await services.store.maintenance.lease_record(WORKERS_LEASE)
    if record is None or record.expires_at <= datetime.now(UTC):
        return None, None
    return record.holder, read_figures(record.figures)


def _with_eta(
    published: dict[str, Any] | None, stripes_below_target: int, services: Services
) -> dict[str, Any] | None:
    """The leader's figures and the ETA at the leader's rate (None without progress)."""
    if published is None:
        return None
    rate = published.get("rate_bytes_per_s")
    eta_s = None
    if isinstance(rate, int | float) and rate > 0:
        block = repair_block_bytes(services.settings)
        eta_s = round(repair_eta_s(stripes_below_target, block, rate), 1)
    return {**published, "eta_s": eta_s}
