"""Feeds the event log (``gateway.events``) by comparing what this gateway sees every couple
of seconds with what it saw before: node liveness, the repair worker's state, the corrupt
chunks nodes' scrubbers report, blocks read that fail their CRC, chunk files found missing,
and the workers' lease.

Comparing snapshots rather than hooking each place that changes: a node goes down by staying
silent, which no code path announces, and the other changes are all readable from the
services without reaching into them.
"""

from __future__ import annotations

from diststorage.core.worker import WorkerState
from diststorage.gateway.datapath import NodeStats
from diststorage.gateway.events import EventKind, EventLog
from diststorage.gateway.services import Services
from diststorage.gateway.workers.lease import WORKERS_LEASE
from diststorage.meta import NodeLiveness

_STATE_EVENTS = {
    NodeLiveness.UP: EventKind.NODE_UP,
    NodeLiveness.SUSPECT: EventKind.NODE_SUSPECT,
    NodeLiveness.DOWN: EventKind.NODE_DOWN,
}
# The lease holder is read from the database this often only (in watcher ticks).
LEASE_EVERY_TICKS = 5


class EventWatcher:
    def __init__(self, services: Services, events: EventLog, node_stats: NodeStats) -> None:
        self._services = services
        self._node_stats = node_stats
        self._crc: dict[str, int] = {}
        self._events = events
        self._states: dict[str, NodeLiveness] = {}
        self._repairing = False
        self._segments_repaired = 0
        self._corrupt: dict[str, int] = {}
        self._missing = 0
        self._holder: str | None = None
        self._ticks = 0

    async def observe(self) -> None:
        """One comparison. Raises Unavailable (the database, for the lease) after recording
        what it could."""
        self._nodes()
        self._repair()
        self._corruption()
        if self._ticks % LEASE_EVERY_TICKS == 0:
            await self._lease()
        self._ticks += 1

    def _nodes(self) -> None:
        for view in self._services.inventory.views():
            node_id = view.info.node_id
            before = self._states.get(node_id)
            self._states[node_id] = view.state
            # A node first seen down is one this gateway has not heard since it started:
            # not news. Any later change is.
            if view.state != before and not (before is None and view.state == NodeLiveness.DOWN):
                self._events.record(
                    _STATE_EVENTS[view.state], f"{view.info.address} is {view.state}", node_id
                )

    def _repair(self) -> None:
        repair = self._services.repair
        busy = repair.state in (WorkerState.BUSY, WorkerState.THROTTLED)
        done = repair.counters.segments_repaired
        if busy and not self._repairing:
            self._events.record(EventKind.REPAIR_STARTED, "repair started on this gateway")
            self._segments_repaired = done
        elif not busy and (self._repairing or done > self._segments_repaired):
            # Also a repair begun and ended between two looks: its count moved.
            segments = done - self._segments_repaired
            self._events.record(
                EventKind.REPAIR_FINISHED, f"repair finished: {segments} segments repaired"
            )
            self._segments_repaired = done
        self._repairing = busy

    def _corruption(self) -> None:
        inventory = self._services.inventory
        for node_id, scrub in list(self._services.scrub_status.items()):
            before = self._corrupt.get(node_id)
            self._corrupt[node_id] = scrub.corrupt_found
            if before is not None and scrub.corrupt_found > before:
                self._events.record(
                    EventKind.CORRUPT_CHUNK,
                    f"{inventory.address_of(node_id) or node_id[:8]}: the scrubber found "
                    f"{scrub.corrupt_found - before} corrupt chunk(s)",
                    node_id,
                )
        for node_id in inventory.node_ids():
            before = self._crc.get(node_id, 0)
            self._crc[node_id] = crc = self._node_stats.crc_errors(node_id)
            if crc > before:
                self._events.record(
                    EventKind.CORRUPT_CHUNK,
                    f"{inventory.address_of(node_id) or node_id[:8]}: {crc - before} block(s) "
                    "read from it failed their CRC",
                    node_id,
                )
        missing = self._services.collector.missing_found
        if missing > self._missing:
            self._events.record(
                EventKind.CORRUPT_CHUNK,
                f"{missing - self._missing} chunk file(s) found missing from their node",
            )
        self._missing = missing

    async def _lease(self) -> None:
        holder = await self._services.store.maintenance.lease_holder(WORKERS_LEASE)
        current = None if holder is None else holder[0]
        if current != self._holder and current is not None:
            self._events.record(EventKind.LEADER_MOVED, f"gateway {current[:8]} now leads")
        self._holder = current
