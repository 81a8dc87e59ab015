"""The gateway's Prometheus metrics, served at ``/_/metrics``: one registry for the whole
gateway, both front ends and the data path included.

Names follow https://prometheus.io/docs/practices/naming: one ``diststorage_`` prefix, base
units, ``_total`` on counters. Beside the process's own (``process_*``, ``python_info``):

- ``diststorage_build_info{version}``;
- front ends (``http.access``): ``diststorage_http_requests_total{api,method,route,status}``,
  ``diststorage_http_request_seconds{api,method,route}``, ``…_received_bytes_total{api}``,
  ``…_sent_bytes_total{api}``;
- nodes, from their heartbeats, so that an operator scrapes gateways only:
  ``diststorage_nodes{state}``, ``diststorage_node_up{node}`` (1 unless down),
  ``…_capacity_bytes``, ``…_used_bytes``, ``…_heartbeat_age_seconds``,
  ``diststorage_node_info{node,address,lifecycle}``; their scrubbers:
  ``diststorage_scrub_verified_bytes_total{node}``, ``…_corrupt_chunks_total``,
  ``…_passes_total``, ``…_last_pass_timestamp_seconds`` (counters since the node started);
- the data path (``datapath``): ``diststorage_node_rpc_seconds{op,node}``,
  ``diststorage_block_crc_errors_total{node}``, ``diststorage_block_deadline_exceeded_total{node}``,
  ``diststorage_degraded_reads_total``, ``diststorage_meta_query_seconds{op}``.

Every labelled series exists at zero for every node this gateway knows: a ``> 0`` alert or
a ``rate()`` needs the series before the first event. Other parts (repair, durability) register
their collectors on ``registry``.

A gateway of several worker processes answers a scrape, whichever worker it reaches, with the
figures of all of them merged (``pool.merge``), and ``diststorage_gateway_workers``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator, Mapping

from aiohttp import web
from aiohttp.typedefs import Middleware
from prometheus_client import (
    CollectorRegistry,
    Gauge,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from diststorage import __version__
from diststorage.gateway.datapath import DataPathMetrics
from diststorage.gateway.heartbeats import ScrubStatus
from diststorage.gateway.http.access import HttpMetrics, RouteOf, access_middleware
from diststorage.gateway.inventory import Inventory, NodeView
from diststorage.gateway.pool import merge_expositions
from diststorage.meta import NodeLiveness

NO_SCRUB = ScrubStatus(0, 0, 0, 0.0)

# Each front end's route labels (``api.routes.route_of``, ``s3.app.route_of``).
FRONT_END_ROUTES: dict[str, tuple[str, ...]] = {
    "native": ("object", "list", "system"),
    "s3": ("object", "list", "bucket", "other"),
}


class _NodeCollector(Collector):
    """The node table and the scrubbers' reports, read at each scrape."""

    def __init__(self, inventory: Inventory, scrub: Mapping[str, ScrubStatus]) -> None:
        self._inventory = inventory
        self._scrub = scrub

    def collect(self) -> Iterator[Metric]:
        views = self._inventory.views()
        yield from _node_gauges(views, time.time())
        yield from _scrub_counters(views, self._scrub)


def _node_gauges(views: list[NodeView], now: float) -> Iterator[Metric]:
    up = GaugeMetricFamily("diststorage_node_up", "1 unless the node is down", labels=["node"])
    capacity = GaugeMetricFamily(
        "diststorage_node_capacity_bytes", "Capacity the node reports", labels=["node"]
    )
    used = GaugeMetricFamily(
        "diststorage_node_used_bytes", "Bytes the node reports in use", labels=["node"]
    )
    age = GaugeMetricFamily(
        "diststorage_node_heartbeat_age_seconds",
        "Time since the node's last heartbeat was recorded",
        labels=["node"],
    )
    info = GaugeMetricFamily(
        "diststorage_node_info",
        "Each node's address and lifecycle (pending, active, draining)",
        labels=["node", "address", "lifecycle"],
    )
    for view in views:
        node = [view.info.node_id]
        up.add_metric(node, 0 if view.state == NodeLiveness.DOWN else 1)
        capacity.add_metric(node, view.info.capacity_bytes)
        used.add_metric(node, view.info.used_bytes)
        age.add_metric(node, max(0.0, now - view.info.last_heartbeat.timestamp()))
        info.add_metric([view.info.node_id, view.info.address, str(view.lifecycle)], 1)
    yield from (up, capacity, used, age, info)


def _scrub_counters(views: list[NodeView], reports: Mapping[str, ScrubStatus]) -> Iterator[Metric]:
    verified = CounterMetricFamily(
        "diststorage_scrub_verified_bytes",
        "Bytes the node's scrubber verified since the node started",
        labels=["node"],
    )
    corrupt = CounterMetricFamily(
        "diststorage_scrub_corrupt_chunks",
        "Corrupt chunks the node's scrubber found since the node started",
        labels=["node"],
    )
    passes = CounterMetricFamily(
        "diststorage_scrub_passes", "Scrub passes the node completed", labels=["node"]
    )
    last_pass = GaugeMetricFamily(
        "diststorage_scrub_last_pass_timestamp_seconds",
        "When the node's last scrub pass ended (0: none yet)",
        labels=["node"],
    )
    for view in views:
        node_id = view.info.node_id
        scrub = reports.get(node_id, NO_SCRUB)
        verified.add_metric([node_id], scrub.verified_bytes)
        corrupt.add_metric([node_id], scrub.corrupt_found)
        passes.add_metric([node_id], scrub.passes_completed)
        last_pass.add_metric([node_id], scrub.last_pass_finished)
    yield from (verified, corrupt, passes, last_pass)


class ApiMetrics:
    """Every metric of one gateway, on one registry (``registry``): build it once, hand
    ``data_path`` to the node clients, the reader and the metadata store, and each front end
    its ``middleware``."""

    def __init__(
        self,
        inventory: Inventory,
        scrub: Mapping[str, ScrubStatus],
        data_path: DataPathMetrics | None = None,
        siblings_scrape: Callable[[], Awaitable[list[bytes]]] | None = None,
        sibling_counters: Collector | None = None,
    ) -> None:
        """``siblings_scrape``: the sibling workers' own expositions, to merge into each
        scrape; ``sibling_counters``: their HTTP counters, kept fresh, for the dashboard's
        throughput (a gateway of several worker processes)."""
        self.registry = CollectorRegistry()
        self._siblings_scrape = siblings_scrape
        self._sibling_counters = sibling_counters
        self._inventory = inventory
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        Info("diststorage_build", "This gateway's version", registry=self.registry).info(
            {"version": __version__}
        )
        self.http = HttpMetrics(self.registry, FRONT_END_ROUTES)
        self.data_path = data_path if data_path is not None else DataPathMetrics()
        self.data_path.register(self.registry)
        nodes = Gauge(
            "diststorage_nodes", "Storage nodes by state", ["state"], registry=self.registry
        )
        nodes.labels("up").set_function(inventory.live_count)
        nodes.labels("down").set_function(lambda: len(inventory.views()) - inventory.live_count())
        self.registry.register(_NodeCollector(inventory, scrub))
        # The HTTP counters alone, for a sibling worker's dashboard throughput (pool.counters).
        self._http_registry = CollectorRegistry(auto_describe=False)
        for collector in self.http.collectors():
            self._http_registry.register(collector)

    def throughput_collectors(self) -> tuple[Collector, ...]:
        """The HTTP counters of the whole gateway, its sibling workers' included, for the
        dashboard's throughput to sample."""
        own = self.http.collectors()
        return own if self._sibling_counters is None else (*own, self._sibling_counters)

    def middleware(self, api: str, route_of: RouteOf) -> Middleware:
        """Front end ``api``'s outermost middleware (``http.access``)."""
        return access_middleware(api, route_of, self.http)

    def scrape(self) -> bytes:
        """This process's own figures."""
        self.data_path.know_nodes(self._inventory.node_ids())
        return generate_latest(self.registry)

    def http_scrape(self) -> bytes:
        """This process's HTTP counters alone."""
        return generate_latest(self._http_registry)

    async def gateway_scrape(self) -> bytes:
        """The gateway's figures: this process's, merged with its sibling workers' if any."""
        own = self.scrape()
        if self._siblings_scrape is None:
            return own
        return merge_expositions(own, await self._siblings_scrape())

    async def render(self) -> web.Response:
        body = await self.gateway_scrape()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


METRICS = web.AppKey("metrics", ApiMetrics)
