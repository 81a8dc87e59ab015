"""The sibling workers' HTTP counters, for the dashboard's live throughput chart.

The chart samples the HTTP counters every two seconds (dashboard/throughput.py) in whichever
worker the page's stream reached; this worker's own counters are its share of the traffic
only. So every worker also keeps the siblings' latest HTTP families, fetched at each sample
interval over the sibling channel, and the chart sums them with its own: the chart shows
the gateway's traffic whichever worker draws it.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

from diststorage.core.worker import Figures, Step, WorkerState
from diststorage.gateway.pool.siblings import Siblings

HTTP_PREFIX = "diststorage_http_"


class SiblingCounters(Collector):
    """A worker (core.worker) that refreshes the copy every ``interval_s``, and a collector
    of it."""

    name = "sibling-counters"

    def __init__(self, siblings: Siblings, interval_s: float) -> None:
        self._siblings = siblings
        self._interval_s = interval_s
        self._families: list[Metric] = []
        self._answered = 0

    def status(self) -> Figures:
        return {"siblings_answered": self._answered}

    async def work(self) -> Step:
        expositions = await self._siblings.http_counters_all()
        self._families = [
            family
            for exposition in expositions
            for family in text_string_to_metric_families(exposition.decode())
            # The text format gives each counter's creation times a family of their own.
            if family.name.startswith(HTTP_PREFIX) and not family.name.endswith("_created")
        ]
        self._answered = len(expositions)
        return Step(WorkerState.IDLE, wait_s=self._interval_s)

    async def close(self) -> None:
        self._families = []

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
