"""Deletes chunks that no object needs any more (replaced or deleted objects).

Garbage is first queued in the metadata database in the same transaction that orphaned it, so
a crash here loses nothing: ``sweep`` picks up whatever is still queued. Deletion is bounded in
concurrency and every call has a deadline; a chunk whose node is down stays queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

from diststorage.core.clock import SYSTEM_CLOCK, Clock, utc_now
from diststorage.core.errors import ChunkNotFound, DiststorageError
from diststorage.core.tasks import BackgroundTasks
from diststorage.gateway.inventory import Inventory
from diststorage.gateway.nodeclient import NodeClients
from diststorage.gateway.readers import ActiveReads
from diststorage.meta import ChunkRef, MetadataStore

log = logging.getLogger(__name__)

MAX_CONCURRENT_DELETES = 16
SWEEP_BATCH = 500
SWEEP_AGE_S = 60.0


class Janitor:
    """Build with ``await Janitor.open(...)``; ``close`` cancels the deletions still running
    (their chunks stay queued, for ``sweep``)."""

    def __init__(
        self,
        store: MetadataStore,
        inventory: Inventory,
        clients: NodeClients,
        reads: ActiveReads,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._reads = reads
        self._inventory = inventory
        self._clients = clients
        self._clock = clock
        self._limit = asyncio.Semaphore(MAX_CONCURRENT_DELETES)
        self._deleting = BackgroundTasks("janitor")

    @classmethod
    async def open(
        cls,
        store: MetadataStore,
        inventory: Inventory,
        clients: NodeClients,
        reads: ActiveReads,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Janitor:
        """A janitor ready to delete in the background (its task owner is open)."""
        janitor = cls(store, inventory, clients, reads, clock)
        await janitor._deleting.open()
        return janitor

    @property
    def deletions_running(self) -> int:
        """Background deletions (``delete_soon``) that have not ended."""
        return len(self._deleting)

    def delete_after_reads(self, object_id: str, refs: Sequence[ChunkRef]) -> None:
        """Deletes the chunks of a dropped object version once no download of it runs here."""
        if refs:
            self._reads.after_reads(object_id, refs, lambda: self.delete_soon(refs))

    def delete_soon(self, refs: Sequence[ChunkRef]) -> None:
        """Deletes the chunks in the background. After ``close`` it does nothing: the chunks
        are queued as garbage already, and the next sweep (of any gateway) deletes them."""
        if not refs or self._deleting.closed:
            return
        self._deleting.start(self._delete_quietly(list(refs)), name="delete chunks")

    async def _delete_quietly(self, refs: list[ChunkRef]) -> None:
        await self._delete(refs)

    async def sweep(self) -> int:
        """Deletes queued garbage whose nodes are live; returns how many chunks went."""
        # Fresh garbage is being deleted by delete_soon, or parked for a running download.
        cutoff = utc_now(self._clock) - timedelta(seconds=SWEEP_AGE_S)
        queued = await self._store.list_garbage(SWEEP_BATCH, queued_before=cutoff)
        # A node removed from the cluster will never be asked again.
        await self._store.forget_garbage(
            [r.chunk_id for r in queued if not self._inventory.knows(r.node_id)]
        )
        refs = [
            r
            for r in queued
            if self._inventory.is_up(r.node_id) and not self._reads.parks(r.chunk_id)
        ]
        return await self._delete(refs)

    async def delete_now(self, refs: Sequence[ChunkRef]) -> list[ChunkRef]:
        """Deletes the chunks from their nodes; returns those that could not be deleted."""
        done = await asyncio.gather(*(self._delete_one(r) for r in refs))
        return [r for r, ok in zip(refs, done, strict=True) if not ok]

    async def _delete(self, refs: list[ChunkRef]) -> int:
        left = {r.chunk_id for r in await self.delete_now(refs)}
        gone = [r.chunk_id for r in refs if r.chunk_id not in left]
        try:
            await self._store.forget_garbage(gone)
        except DiststorageError as exc:
            log.warning("could not record %d deleted chunks: %s", len(gone), exc)
        return len(gone)

    async def _delete_one(self, ref: ChunkRef) -> bool:
        async with self._limit:
            # Taken once its turn came: the wait can outlast the grace a replaced channel gets.
            client = self._clients.get(ref.node_id)
            if client is None or not self._inventory.is_live(ref.node_id):
                return False
            try:
                await client.delete(ref.chunk_id)
            except ChunkNotFound:
                pass
            except DiststorageError as exc:
                log.info("chunk %s stays queued: %s", ref.chunk_id[:8], exc)
                return False
        return True

    async def close(self) -> None:
        await self._deleting.aclose()
