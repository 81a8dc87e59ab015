"""Prometheus metrics of the HTTP API, served at /_/metrics."""

from __future__ import annotations

import time

from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from diststorage.gateway.api.parse import is_ui_path
from diststorage.gateway.inventory import Inventory


class ApiMetrics:
    """Requests, latency and bytes of one HTTP application, plus the node gauge."""

    def __init__(self, inventory: Inventory) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "diststorage_http_requests",
            "HTTP requests answered",
            ["method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "diststorage_http_request_seconds",
            "Time to answer, body included",
            ["method"],
            buckets=(
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                0.5,
                1,
                2.5,
                5,
                10,
                30,
                60,
                300,
            ),
            registry=self.registry,
        )
        self.bytes_in = Counter(
            "diststorage_http_received_bytes",
            "Request body bytes received",
            registry=self.registry,
        )
        self.bytes_out = Counter(
            "diststorage_http_sent_bytes", "Response body bytes sent", registry=self.registry
        )
        nodes = Gauge(
            "diststorage_nodes", "Storage nodes by state", ["state"], registry=self.registry
        )
        nodes.labels("up").set_function(inventory.live_count)
        nodes.labels("down").set_function(lambda: len(inventory.views()) - inventory.live_count())

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # The dashboard's pages and its minutes-long live streams are not the API's traffic:
        # counted, they would swamp the GET latency they are there to show.
        if is_ui_path(request.raw_path):
            return await handler(request)
        started = time.perf_counter()
        response: web.StreamResponse = await handler(request)
        self.requests.labels(request.method, str(response.status)).inc()
        self.latency.labels(request.method).observe(time.perf_counter() - started)
        if request.content_length:
            self.bytes_in.inc(request.content_length)
        if response.content_length:
            self.bytes_out.inc(response.content_length)
        return response

    def render(self) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )


METRICS = web.AppKey("metrics", ApiMetrics)
