"""Damaged chunks found while reading, on their way to the repair queue.

A read that meets a corrupt or missing chunk has already served the right bytes from other
shards; it only needs the chunk marked damaged (never read again) and its segment queued for
repair. Reports are batched off the request path and bounded: past the bound new reports are
dropped, and the next read or scrub of that chunk reports it again.
"""

from __future__ import annotations

import asyncio
import logging

from diststorage.core.errors import DiststorageError
from diststorage.meta import ChunkState, MaintenanceStore

log = logging.getLogger(__name__)

MAX_PENDING_REPORTS = 10_000


class DamageReports:
    def __init__(self, maintenance: MaintenanceStore) -> None:
        self._maintenance = maintenance
        self._pending: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None

    def report(self, chunk_id: str) -> None:
        if len(self._pending) >= MAX_PENDING_REPORTS:
            return
        self._pending.add(chunk_id)
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = list(self._pending), set()
            try:
                marked = await self._maintenance.mark_chunks(batch, ChunkState.DAMAGED)
            except DiststorageError as error:
                log.warning("could not record %d damaged chunks: %s", len(batch), error)
                return
            if marked:
                log.warning("%d damaged chunks queued for repair", marked)

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
