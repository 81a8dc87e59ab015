"""Garbage collection: what failed writes, crashes and lost nodes leave behind.

Three kinds of leftovers, each deleted only after ``gc_grace_s``, and one kind of loss:

- pending uploads nobody touches any more (their gateway crashed mid-upload): rows dropped,
  chunks queued as garbage. This gateway touches its own running uploads well within the
  grace, so a slow upload is never taken for a dead one.
- queued garbage (replaced, deleted or repaired-away chunks) whose node was down when it was
  queued: deleted once the node is up (see Janitor.sweep).
- chunks on nodes that no metadata references at all (written by a gateway that crashed
  before recording them, deleted while their node was down and since forgotten): found by
  listing each node, older than the grace and absent from the database. Chunks of uploads in
  flight are referenced from before their first byte, and repair's in-flight copies are
  spared explicitly, so neither is ever taken.
- chunks the metadata places on a node that the node no longer has (a file lost from its
  disk): found by the same walk through the node's listing, checked once more against the node
  (a chunk can land there between the listing and the metadata read), then marked damaged,
  which queues the segment for repair. Without this only a read that happened to need the
  chunk would notice it gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from diststorage.core.clock import SYSTEM_CLOCK, Clock, utc_now
from diststorage.core.errors import ChunkNotFound, DiststorageError
from diststorage.core.worker import Figures, Step, WorkerState
from diststorage.gateway.inventory import Inventory
from diststorage.gateway.janitor import Janitor
from diststorage.gateway.nodeclient import ListedChunk, NodeClient, NodeClients
from diststorage.meta import ChunkState, MaintenanceStore

log = logging.getLogger(__name__)

STALE_UPLOADS_PER_STEP = 100
LIST_PAGE = 1000


class GarbageCollector:
    name = "gc"

    def __init__(
        self,
        gc_grace_s: float,
        maintenance: MaintenanceStore,
        inventory: Inventory,
        clients: NodeClients,
        janitor: Janitor,
        active_uploads: Callable[[], list[str]],
        spared_chunks: Callable[[], frozenset[str]],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._grace_s = gc_grace_s
        self._maintenance = maintenance
        self._inventory = inventory
        self._clients = clients
        self._janitor = janitor
        self._active_uploads = active_uploads
        self._spared_chunks = spared_chunks
        self._clock = clock
        self._idle_interval_s = min(max(gc_grace_s / 4, 1.0), 60.0)
        self._scan_interval_s = min(max(gc_grace_s / 2, 1.0), 3600.0)
        self._next_scan = clock.monotonic() + self._scan_interval_s
        self.uploads_collected = 0
        self.orphans_deleted = 0
        self.garbage_deleted = 0
        self.missing_found = 0

    def status(self) -> Figures:
        return {
            "uploads_collected": self.uploads_collected,
            "orphans_deleted": self.orphans_deleted,
            "garbage_deleted": self.garbage_deleted,
            "missing_found": self.missing_found,
        }

    async def work(self) -> Step:
        await self._collect_stale_uploads()
        self.garbage_deleted += await self._janitor.sweep()
        if self._clock.monotonic() >= self._next_scan:
            self._next_scan = self._clock.monotonic() + self._scan_interval_s
            for node_id in self._inventory.node_ids():
                if self._inventory.is_up(node_id):
                    await self._audit(node_id)
        return Step(WorkerState.IDLE, self._idle_interval_s)

    async def close(self) -> None:
        """Nothing held between units."""

    async def _collect_stale_uploads(self) -> None:
        cutoff = utc_now(self._clock) - timedelta(seconds=self._grace_s)
        running = set(self._active_uploads())
        for stale in await self._maintenance.stale_uploads(cutoff, STALE_UPLOADS_PER_STEP):
            if stale.object_id in running:
                continue
            refs = await self._maintenance.collect_upload(stale.object_id, cutoff)
            if refs:
                self._janitor.delete_soon(refs)
            self.uploads_collected += 1
            log.info(
                "abandoned upload %s (gateway %s): %d chunks to delete",
                stale.object_id,
                stale.gateway_id[:8],
                len(refs),
            )

    async def _audit(self, node_id: str) -> None:
        """Walks the node's listing page by page beside the metadata's chunks for the same id
        range: what only the node has is an orphan, what only the metadata has is missing."""
        client = self._clients.get(node_id)
        if client is None:
            return
        after = ""
        try:
            while True:
                page = await client.list_chunks(after, LIST_PAGE)
                await self._delete_orphans(client, node_id, page.chunks)
                listed = {c.chunk_id for c in page.chunks}
                upto = page.chunks[-1].chunk_id if page.truncated and page.chunks else None
                await self._mark_missing(client, node_id, after, upto, listed)
                if upto is None:
                    return
                after = upto
        except DiststorageError as error:
            log.info("audit of node %s stopped: %s", node_id[:8], error)

    async def _delete_orphans(
        self, client: NodeClient, node_id: str, listed: Sequence[ListedChunk]
    ) -> None:
        # The node stamps its files on its own clock: machines' clocks must agree to within
        # a small part of the grace.
        cutoff = self._clock.time() - self._grace_s
        old = [c.chunk_id for c in listed if c.mtime < cutoff]
        known = await self._maintenance.known_chunks(old)
        spared = self._spared_chunks()
        for chunk_id in old:
            if chunk_id in known or chunk_id in spared:
                continue
            try:
                await client.delete(chunk_id)
            except ChunkNotFound:
                continue
            self.orphans_deleted += 1
            log.info("deleted unreferenced chunk %s on node %s", chunk_id, node_id[:8])

    async def _mark_missing(
        self, client: NodeClient, node_id: str, after: str, upto: str | None, listed: set[str]
    ) -> None:
        while True:
            placed = await self._maintenance.chunks_placed_on(node_id, after, upto, LIST_PAGE)
            gone = [
                chunk_id
                for chunk_id in placed
                if chunk_id not in listed and not await _still_there(client, chunk_id)
            ]
            if gone:
                self.missing_found += await self._maintenance.mark_chunks(gone, ChunkState.DAMAGED)
                log.warning(
                    "node %s lacks %d chunks the metadata places there (%s...): queued for repair",
                    node_id[:8],
                    len(gone),
                    gone[0],
                )
            if len(placed) < LIST_PAGE:
                return
            after = placed[-1]


async def _still_there(client: NodeClient, chunk_id: str) -> bool:
    """Whether the node lists the chunk now: one listing entry from just below its id."""
    below = int(chunk_id, 16) - 1
    page = await client.list_chunks("" if below < 0 else f"{below:032x}", 1)
    return bool(page.chunks) and page.chunks[0].chunk_id == chunk_id


class UploadToucher:
    """Marks this gateway's running uploads as alive, well within the GC grace period. Runs on
    every gateway, leader or not: the leader's collector spares only touched uploads."""

    name = "uploads"

    def __init__(
        self,
        gc_grace_s: float,
        maintenance: MaintenanceStore,
        active_uploads: Callable[[], list[str]],
    ) -> None:
        self._maintenance = maintenance
        self._active_uploads = active_uploads
        self._idle_interval_s = min(max(gc_grace_s / 4, 0.5), 60.0)

    def status(self) -> Figures:
        return {"running_uploads": len(self._active_uploads())}

    async def work(self) -> Step:
        await self._maintenance.touch_uploads(self._active_uploads())
        return Step(WorkerState.IDLE, self._idle_interval_s)

    async def close(self) -> None:
        """Nothing held between units."""
