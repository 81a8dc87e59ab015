"""Every request of a front end, seen once from outside: its id, its access line and its
request metrics.

The outermost middleware of each front end (``access_middleware``) gives the request its id
(the client's ``X-Request-Id`` if acceptable, else a new one: ``core.request_ids``), runs the
request under it, and when the answer is done writes one access line and counts it::

    request  method=GET route=object status=200 bytes_in=0 bytes_out=1048576 duration_s=0.012

Object keys never reach the line: a request's path is logged as ``target``, the first 16 hex
digits of its SHA-256, which tells requests for one object apart from others without saying
what the object is called. ``/_/`` routes (route ``system``) are counted but stay out of the
latency histogram: a dashboard's event stream is one request that lasts minutes and would
swamp any latency percentile, whatever its route label said, since a query that sums over
routes (``sum by (le)``) is the usual way to read that histogram.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.registry import Collector

from diststorage.core.logs import fields
from diststorage.core.request_ids import HEADER, accepted_or_new, current_request_id

log = logging.getLogger("diststorage.access")

REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id", str)

SYSTEM_ROUTE = "system"
# Methods outside these are counted as "other": a label value is never whatever a client sent.
KNOWN_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE")
CLIENT_GONE_STATUS = 499  # nginx's: the client closed the connection before the answer
ANSWER_SENT: web.RequestKey[web.StreamResponse] = web.RequestKey("answer_sent", web.StreamResponse)
"""Request key: the streamed response whose whole body went out. A client that closes the
connection once it has every byte can cancel the handler in its last steps; its access line
then still says what it got."""

LATENCY_BUCKETS_S = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300,
)  # fmt: skip

RouteOf = Callable[[web.Request], str]
"""A request's route label: a small fixed set per front end (object, list, system, ...)."""


def request_id_of(request: web.Request) -> str:
    """The request's id, taken from its ``X-Request-Id`` or made, on first use."""
    request_id = request.get(REQUEST_ID)
    if request_id is None:
        request_id = accepted_or_new(request.headers.get(HEADER))
        request[REQUEST_ID] = request_id
    return request_id


async def add_request_id_header(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: every answer names its request, streamed ones too."""
    response.headers.setdefault(HEADER, request_id_of(request))


def method_label(method: str) -> str:
    return method if method in KNOWN_METHODS else "other"


def target_of(request: web.Request) -> str:
    """What a log line says of a request's path (which holds the object's key): the first 16
    hex digits of its SHA-256, the same for every request to one object."""
    path = request.raw_path.partition("?")[0]
    return hashlib.sha256(path.encode(errors="surrogateescape")).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Access:
    """One answered request, as its access line and its metrics see it."""

    api: str
    method: str
    route: str
    status: int
    bytes_in: int
    bytes_out: int
    duration_s: float
    target: str

    def fields(self) -> dict[str, str | int | float]:
        """The access line's fields (``dataclasses.asdict`` copies each value deeply: a
        few microseconds a request for nothing)."""
        return {
            "api": self.api,
            "method": self.method,
            "route": self.route,
            "status": self.status,
            "bytes_in": self.bytes_in,
            "bytes_out": self.bytes_out,
            "duration_s": self.duration_s,
            "target": self.target,
        }


_Series = tuple[Counter, Histogram | None, Counter, Counter]
"""The children of one label set: requests, latency (None for /_/ routes), bytes in, out."""


class HttpMetrics:
    """Requests, latency and body bytes of the gateway's front ends, by ``api``."""

    def __init__(self, registry: CollectorRegistry, routes: dict[str, tuple[str, ...]]) -> None:
        """``routes``: each front end's route labels, whose series start at zero."""
        self._requests = Counter(
            "diststorage_http_requests",
            "HTTP requests answered",
            ["api", "method", "route", "status"],
            registry=registry,
        )
        self._latency = Histogram(
            "diststorage_http_request_seconds",
            "Time to answer, body included (/_/ routes left out)",
            ["api", "method", "route"],
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self._bytes_in = Counter(
            "diststorage_http_received_bytes",
            "Request body bytes received",
            ["api"],
            registry=registry,
        )
        self._bytes_out = Counter(
            "diststorage_http_sent_bytes", "Response bytes sent", ["api"], registry=registry
        )
        self._series: dict[tuple[str, str, str, int], _Series] = {}
        for api, labels in routes.items():
            self._bytes_in.labels(api)
            self._bytes_out.labels(api)
            for route in labels:
                if route != SYSTEM_ROUTE:
                    for method in KNOWN_METHODS:
                        self._latency.labels(api, method, route)

    def collectors(self) -> tuple[Collector, ...]:
        """The request, latency and byte counters alone, for the dashboard to sample without
        running every collector of the registry."""
        return (self._requests, self._latency, self._bytes_in, self._bytes_out)

    def observe(self, access: Access) -> None:
        api, method, route = access.api, access.method, access.route
        series = self._series.get((api, method, route, access.status))
        if series is None:
            series = self._add_series(api, method, route, access.status)
        requests, latency, bytes_in, bytes_out = series
        requests.inc()
        if latency is not None:
            latency.observe(access.duration_s)
        bytes_in.inc(access.bytes_in)
        bytes_out.inc(access.bytes_out)

    def _add_series(self, api: str, method: str, route: str, status: int) -> _Series:
        # ``labels()`` takes a lock and builds its key on every call: the children of one
        # label set are looked up once. Labels come from small fixed sets (method_label,
        # the routes, HTTP statuses), so this stays small.
        series = (
            self._requests.labels(api, method, route, str(status)),
            None if route == SYSTEM_ROUTE else self._latency.labels(api, method, route),
            self._bytes_in.labels(api),
            self._bytes_out.labels(api),
        )
        self._series[(api, method, route, status)] = series
        return series


def _bytes_out(response: web.StreamResponse | None) -> int:
    if response is None:
        return 0
    if response.content_length is not None:
        return response.content_length
    return response.body_length  # a streamed answer as written, head included


def access_middleware(api: str, route_of: RouteOf, metrics: HttpMetrics) -> Middleware:
    """The outermost middleware of front end ``api``: the request's id, its access line and
    its metrics, whatever the request's fate (the client gone: status 499)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        token = current_request_id.set(request_id_of(request))
        started = time.perf_counter()
        response: web.StreamResponse | None = None
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except asyncio.CancelledError:
            response = request.get(ANSWER_SENT)
            status = CLIENT_GONE_STATUS if response is None else response.status
            raise
        except web.HTTPException as answer:
            status = answer.status
            raise
        finally:
            access = Access(
                api=api,
                method=method_label(request.method),
                route=route_of(request),
                status=status,
                bytes_in=request.content_length or 0,
                bytes_out=_bytes_out(response),
                duration_s=round(time.perf_counter() - started, 6),
                target=target_of(request),
            )
            metrics.observe(access)
            log.info("request", extra=fields(access.fields()))
            current_request_id.reset(token)

    return middleware
