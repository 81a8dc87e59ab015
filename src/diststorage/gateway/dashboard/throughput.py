"""Live throughput and latency without Prometheus: the HTTP API's own counters
(``http.access``), sampled every 2 s into a ring of the last 10 minutes.

Each sample is the difference between two readings of the counters: requests per second and
bytes per second of GETs and PUTs, and the median and 99th percentile of the requests
answered in between, interpolated within the latency histogram's buckets (as Prometheus'
``histogram_quantile`` does). The dashboard's own requests are not in those counters.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client.registry import Collector

from diststorage.gateway.http.access import SYSTEM_ROUTE

SAMPLE_INTERVAL_S = 2.0
WINDOW_SAMPLES = 300  # 10 minutes


@dataclass(frozen=True, slots=True)
class Reading:
    """The counters' totals at one moment."""

    at_s: float
    requests: dict[str, float]  # by method
    bytes_in: float
    bytes_out: float
    # Cumulative latency buckets (upper bound in seconds → count), all methods together.
    buckets: tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Sample:
    at_s: float  # unix seconds, end of the interval
    get_per_s: float
    put_per_s: float
    in_bytes_per_s: float
    out_bytes_per_s: float
    p50_s: float | None  # None: nothing answered in the interval
    p99_s: float | None


def read_counters(collectors: Iterable[Collector], at_s: float) -> Reading:
    """Totals over both front ends, without the ``/_/`` routes (the dashboard's own among
    them; they are not in the latency histogram at all)."""
    requests: dict[str, float] = {}
    bytes_in = bytes_out = 0.0
    buckets: dict[float, float] = {}
    for collector in collectors:
        for sample in (s for metric in collector.collect() for s in metric.samples):
            if sample.labels.get("route") == SYSTEM_ROUTE:
                continue
            if sample.name == "diststorage_http_requests_total":
                method = sample.labels.get("method", "")
                requests[method] = requests.get(method, 0.0) + sample.value
            elif sample.name == "diststorage_http_received_bytes_total":
                bytes_in += sample.value
            elif sample.name == "diststorage_http_sent_bytes_total":
                bytes_out += sample.value
            elif sample.name == "diststorage_http_request_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return Reading(at_s, requests, bytes_in, bytes_out, tuple(sorted(buckets.items())))


def quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile of a cumulative histogram, linear within its bucket; None when empty.
    A quantile in the +Inf bucket is the highest finite bound."""
    ordered = list(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def sample_between(before: Reading, after: Reading) -> Sample:
    elapsed = max(after.at_s - before.at_s, 1e-9)

    def rate(method: str) -> float:
        return max(after.requests.get(method, 0.0) - before.requests.get(method, 0.0), 0) / elapsed

    earlier = dict(before.buckets)
    delta = [(bound, count - earlier.get(bound, 0.0)) for bound, count in after.buckets]
    return Sample(
        at_s=after.at_s,
        get_per_s=rate("GET"),
        put_per_s=rate("PUT") + rate("POST"),
        in_bytes_per_s=max(after.bytes_in - before.bytes_in, 0) / elapsed,
        out_bytes_per_s=max(after.bytes_out - before.bytes_out, 0) / elapsed,
        p50_s=quantile(0.5, delta),
        p99_s=quantile(0.99, delta),
    )


class Throughput:
    """The ring of samples; ``take(now)`` reads the counters and adds one."""

    def __init__(self, collectors: Iterable[Collector], window: int = WINDOW_SAMPLES) -> None:
        self._collectors = tuple(collectors)
        self._samples: deque[Sample] = deque(maxlen=window)
        self._last: Reading | None = None

    def take(self, now_s: float) -> None:
        reading = read_counters(self._collectors, now_s)
        if self._last is not None:
            self._samples.append(sample_between(self._last, reading))
        self._last = reading

    def samples(self) -> list[Sample]:
        return list(self._samples)

    def latest(self) -> Sample | None:
        return self._samples[-1] if self._samples else None
