"""Damaged chunks found while reading, on their way to the repair queue.

A read that meets a corrupt or missing chunk has already served the right bytes from other
shards; it only needs the chunk marked damaged (never read again) and its segment queued for
repair. Reports are batched off the request path by the ``DamageReports`` worker and bounded:
past the bound new reports are dropped, and the next read or scrub of that chunk reports it
again.
"""

from __future__ import annotations

import logging

from diststorage.core.errors import DiststorageError
from diststorage.core.worker import BUSY, Figures, Step, WorkerState
from diststorage.meta import ChunkState, MaintenanceStore

log = logging.getLogger(__name__)

MAX_PENDING_REPORTS = 10_000
# How long a report may wait for its batch: short next to a repair, and a poll of an empty set
# costs nothing.
FLUSH_INTERVAL_S = 0.25


class DamageReports:
    """Takes reports from reads (``report``) and records them, one batch per unit of work."""

    name = "damage-reports"

    def __init__(self, maintenance: MaintenanceStore) -> None:
        self._maintenance = maintenance
        self._pending: set[str] = set()
        self.sent = 0
        """Reports handed to the database, whether or not they were new there."""
        self.dropped = 0
        """Reports lost to a full queue or a database error (reported again on the next read)."""

    def report(self, chunk_id: str) -> None:
        if len(self._pending) >= MAX_PENDING_REPORTS:
            self.dropped += 1
            return
        self._pending.add(chunk_id)

    def status(self) -> Figures:
        return {"queued": len(self._pending), "sent": self.sent, "dropped": self.dropped}

    async def work(self) -> Step:
        """Records the reports waiting; a database error drops the batch (see the module)."""
        if not self._pending:
            return Step(WorkerState.IDLE, wait_s=FLUSH_INTERVAL_S)
        batch, self._pending = list(self._pending), set()
        try:
            marked = await self._maintenance.mark_chunks(batch, ChunkState.DAMAGED)
        except DiststorageError as error:
            self.dropped += len(batch)
            log.warning("could not record %d damaged chunks: %s", len(batch), error)
            return Step(WorkerState.IDLE, wait_s=FLUSH_INTERVAL_S)
        self.sent += len(batch)
        if marked:
            log.warning("%d damaged chunks queued for repair", marked)
        return BUSY

    async def close(self) -> None:
        pass
