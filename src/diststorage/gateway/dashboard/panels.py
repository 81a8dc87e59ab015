"""What each live panel shows. A panel is one partial (``templates/_<name>.html``) and the
parts of a snapshot it needs; its page includes the partial for the first render and the live
stream (``live``) renders the same partial again, so a number has one rendering.

The snapshot's parts are the dicts the JSON routes answer with (``api.admin``), so the
dashboard and ``/_/`` never disagree, plus this gateway's throughput ring and event log.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from diststorage.core.clock import Clock
from diststorage.gateway.api.admin import health_status, node_json, repair_status
from diststorage.gateway.dashboard.charts import capacity_figures, durability_bars, heat_class
from diststorage.gateway.dashboard.throughput import Throughput
from diststorage.gateway.datapath import NodeStats
from diststorage.gateway.events import EventLog
from diststorage.gateway.services import Services

# chunks_by_node is a GROUP BY over every chunk: read at most this often.
CHUNK_COUNTS_TTL_S = 30.0
AT_RISK_ROWS = 10
EVENT_ROWS = 50


class Part(enum.StrEnum):
    HEALTH = "health"
    REPAIR = "repair"
    NODES = "nodes"
    AT_RISK = "at_risk"
    THROUGHPUT = "throughput"
    EVENTS = "events"


@dataclass(frozen=True, slots=True)
class Panel:
    name: str  # the element id, the SSE event name, and the partial's name (_<name>.html)
    needs: frozenset[Part]

    @property
    def template(self) -> str:
        return f"_{self.name}.html"


def _panel(name: str, *needs: Part) -> Panel:
    return Panel(name, frozenset(needs))


PANELS: dict[str, Panel] = {
    p.name: p
    for p in (
        _panel("health", Part.HEALTH),
        _panel("durability", Part.REPAIR),
        _panel("repair", Part.REPAIR),
        _panel("throughput", Part.THROUGHPUT),
        _panel("capacity", Part.NODES),
        _panel("heatmap", Part.NODES),
        _panel("nodes", Part.NODES),
        _panel("at_risk", Part.AT_RISK),
        _panel("garbage", Part.REPAIR),
        _panel("events", Part.EVENTS),
    )
}


class ChunkCounts:
    """chunks_by_node, cached for CHUNK_COUNTS_TTL_S (a node action forgets it at once)."""

    def __init__(self, services: Services, clock: Clock) -> None:
        self._services = services
        self._clock = clock
        self._value: dict[str, tuple[int, int]] = {}
        self._read_at = float("-inf")

    async def get(self) -> dict[str, tuple[int, int]]:
        now = self._clock.monotonic()
        if now - self._read_at >= CHUNK_COUNTS_TTL_S:
            self._value = await self._services.store.maintenance.chunks_by_node()
            self._read_at = now
        return self._value

    def forget(self) -> None:
        self._read_at = float("-inf")


class Snapshots:
    """Gathers the parts panels need, each once per snapshot however many panels use it."""

    def __init__(
        self,
        services: Services,
        throughput: Throughput,
        events: EventLog,
        chunk_counts: ChunkCounts,
        node_stats: NodeStats,
    ) -> None:
        self._services = services
        self._node_stats = node_stats
        self._throughput = throughput
        self._events = events
        self.chunk_counts = chunk_counts

    async def gather(self, panels: Iterable[Panel]) -> dict[str, Any]:
        """The template context for all of ``panels``. Raises Unavailable (database)."""
        needs: set[Part] = set()
        for panel in panels:
            needs |= panel.needs
        services = self._services
        context: dict[str, Any] = {"now_s": time.time()}
        if Part.HEALTH in needs:
            context["health"] = health_status(services)
        if Part.REPAIR in needs:
            repair = await repair_status(services)
            context["repair"] = repair
            context["durability"] = durability_bars(repair, services.settings.default_policy)
        if Part.NODES in needs:
            counts = await self.chunk_counts.get()
            nodes = [node_json(services, view, counts) for view in services.inventory.views()]
            for node in nodes:
                node["heat"] = heat_class(node["used"], node["capacity"])
                # Blocks this gateway read from the node that failed their CRC, and calls to
                # it that missed their deadline: a node that lies or lags.
                node["crc_errors"] = self._node_stats.crc_errors(node["id"])
                node["deadline_misses"] = self._node_stats.deadline_misses(node["id"])
            context["nodes"] = nodes
            context["capacity"] = capacity_figures(nodes, services.settings.default_policy)
        if Part.AT_RISK in needs:
            context["at_risk"] = await services.store.maintenance.at_risk_segments(AT_RISK_ROWS)
        if Part.THROUGHPUT in needs:
            context["throughput"] = self._throughput.samples()
        if Part.EVENTS in needs:
            context["events"] = self._events.latest(EVENT_ROWS)
        return context
