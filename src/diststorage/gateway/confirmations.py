"""Corrupt-chunk reports confirmed by reading the chunk back, before repair drops it.

A node's scrubber reports the chunks it finds corrupt in its heartbeats (node/reports.py) and
repeats each one until a gateway acknowledges it. A report alone does not make the chunk
damaged: repair would rebuild it elsewhere and delete it, so a node whose scrubber is wrong,
or that lies, could have sound data thrown away. The gateway first reads the chunk from the
reporting node and holds every block to the metadata: its BLAKE3 digest (meta/digests.py), or
its CRC-32C for a chunk written before digests were recorded.

- A chunk that reads back whole and verified is kept. The report was false: a warning names
  the node, and ``false_reports`` counts it.
- A chunk that fails a check, is missing or short, or cannot be read within READ_DEADLINE_S
  is marked damaged and its segment queued for repair, as every report was before.

Only reports of chunks the metadata places on the reporter are read back; any other id is
acknowledged at once and never acted on (heartbeats.py). No heartbeat waits for a read: a
report is queued by ``receive`` and left unacknowledged; the worker reads it back and
settles it; the node repeats it in its next beat, which acknowledges it then. Everything is
bounded, and every bound costs only a repeat: at most QUEUE_PER_NODE reports of one node and
QUEUE_LIMIT in all wait (the others stay unacknowledged, so the node sends them again later),
CONCURRENT_READS chunks are read at once, and SETTLED_LIMIT outcomes wait for their
acknowledgement (the oldest forgotten first: such a chunk is read back once more).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Protocol

import crc32c

from diststorage.core.errors import DiststorageError
from diststorage.core.ids import is_valid_id
from diststorage.core.worker import BUSY, Figures, Step, WorkerState
from diststorage.erasure import Block
from diststorage.gateway.nodeclient import BlockPiece
from diststorage.meta import ChunkState, MaintenanceStore, StoredChunk
from diststorage.meta.digests import block_digest, digest_at

log = logging.getLogger(__name__)

QUEUE_PER_NODE = 256
QUEUE_LIMIT = 2048
CONCURRENT_READS = 4
SETTLED_LIMIT = 10_000
# A whole chunk (64 MiB at most) at a few MiB/s; each block has the node client's own timeout.
READ_DEADLINE_S = 60.0
POLL_INTERVAL_S = 0.25

# (node id, chunk id): a report is about one node's copy.
Report = tuple[str, str]


class ChunkReader(Protocol):
    """One storage node as a read-back uses it (``nodeclient.NodeClient``)."""

    def read(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]:
        """The chunk's blocks in order; raises core errors (ChunkNotFound, DataLoss,
        NodeUnavailable) or TimeoutError."""
        ...


class ChunkReaders(Protocol):
    def get(self, node_id: str) -> ChunkReader | None:
        """The node's client; None for a node no longer known."""
        ...


class CorruptionConfirmations:
    """Takes corrupt-chunk reports from heartbeats (``receive``) and reads them back, a few
    chunks per unit of work."""

    name = "corruption-confirmations"

    def __init__(self, maintenance: MaintenanceStore, readers: ChunkReaders) -> None:
        self._maintenance = maintenance
        self._readers = readers
        # Dicts for their insertion order: the oldest report is read first, forgotten first.
        self._queued: dict[Report, StoredChunk] = {}
        self._reading: set[Report] = set()
        self._settled: dict[Report, None] = {}
        self.confirmed = 0
        """Reports read back as damage: marked damaged, queued for repair."""
        self.false_reports = 0
        """Reported chunks that read back whole and verified: kept."""
        self.deferred = 0
        """Reports left for a later beat because the queue was full."""

    async def receive(self, node_id: str, chunk_ids: Sequence[str]) -> list[str]:
        """Takes a beat's reports; returns those to acknowledge now: the ids the metadata does
        not place on the node (nothing to do), and the reports settled since an earlier beat.
        The rest are queued, or left for a later beat when the queue is full.

        Raises DiststorageError (Unavailable) when the metadata cannot be read: nothing is
        acknowledged then, and the node reports the same chunks again.
        """
        acknowledged: list[str] = []
        fresh: list[str] = []
        for chunk_id in dict.fromkeys(chunk_ids):
            report = (node_id, chunk_id)
            if report in self._settled:
                del self._settled[report]
                acknowledged.append(chunk_id)
            elif not is_valid_id(chunk_id):
                acknowledged.append(chunk_id)  # no chunk has that id
            elif report not in self._queued and report not in self._reading:
                fresh.append(chunk_id)
        placed = {c.chunk_id: c for c in await self._maintenance.reported_chunks(node_id, fresh)}
        for chunk_id in fresh:
            chunk = placed.get(chunk_id)
            if chunk is None:
                acknowledged.append(chunk_id)
            elif self._has_room(node_id):
                self._queued[(node_id, chunk_id)] = chunk
            else:
                self.deferred += 1
        return acknowledged

    def _has_room(self, node_id: str) -> bool:
        if len(self._queued) >= QUEUE_LIMIT:
            return False
        return sum(1 for n, _ in self._queued if n == node_id) < QUEUE_PER_NODE

    def status(self) -> Figures:
        return {
            "queued": len(self._queued),
            "reading": len(self._reading),
            "confirmed": self.confirmed,
            "false_reports": self.false_reports,
            "deferred": self.deferred,
        }

    async def work(self) -> Step:
        """Reads back the oldest reports, then records the damage found and settles them."""
        if not self._queued:
            return Step(WorkerState.IDLE, wait_s=POLL_INTERVAL_S)
        batch = list(self._queued.items())[:CONCURRENT_READS]
        for report, _ in batch:
            del self._queued[report]
            self._reading.add(report)
        try:
            async with asyncio.TaskGroup() as group:
                faults = [group.create_task(self._fault_of(chunk)) for _, chunk in batch]
            outcomes = [(report, f.result()) for (report, _), f in zip(batch, faults, strict=True)]
            await self._settle(outcomes)
        finally:
            self._reading.difference_update(report for report, _ in batch)
        return BUSY

    async def _settle(self, outcomes: list[tuple[Report, str | None]]) -> None:
        damaged: dict[str, list[str]] = {}
        for (node_id, chunk_id), fault in outcomes:
            if fault is None:
                self.false_reports += 1
                log.warning(
                    "node %s reported chunk %s corrupt, but it reads back whole and verified "
                    "from that node: kept",
                    node_id,
                    chunk_id,
                )
            else:
                damaged.setdefault(node_id, []).append(chunk_id)
                log.warning("chunk %s on node %s is damaged: %s", chunk_id, node_id[:8], fault)
        settled = [report for report, fault in outcomes if fault is None]
        for node_id, chunk_ids in damaged.items():
            try:
                marked = await self._maintenance.mark_chunks(
                    chunk_ids, ChunkState.DAMAGED, placed_on=node_id
                )
            except DiststorageError as error:
                # Not settled: the node reports them again and they are read back again.
                log.warning("could not record %d damaged chunks: %s", len(chunk_ids), error)
                continue
            self.confirmed += marked
            settled += [(node_id, chunk_id) for chunk_id in chunk_ids]
        for report in settled:
            self._settled[report] = None
            if len(self._settled) > SETTLED_LIMIT:
                del self._settled[next(iter(self._settled))]

    async def _fault_of(self, chunk: StoredChunk) -> str | None:
        """What is wrong with the node's copy of the chunk; None when it reads back whole
        and every block matches the metadata."""
        reader = self._readers.get(chunk.node_id)
        if reader is None:
            return "its node is no longer known"
        try:
            async with asyncio.timeout(READ_DEADLINE_S):
                return await _fault_in_blocks(
                    chunk, reader.read(chunk.chunk_id, 0, chunk.size_bytes, wait_for_ready=True)
                )
        except (DiststorageError, TimeoutError) as error:
            return f"cannot be read back: {error or 'no answer in time'}"

    async def close(self) -> None:
        """Nothing held between units: what is queued is reported again by the nodes."""


async def _fault_in_blocks(chunk: StoredChunk, blocks: AsyncIterator[BlockPiece]) -> str | None:
    count = len(chunk.block_crcs)
    size = 0
    index = 0
    async for piece in blocks:
        if index >= count:
            return f"more than its {count} blocks"
        if not piece.whole_block:
            return f"block {index} is partial"
        fault = block_fault(chunk, index, piece.data)
        if fault is not None:
            return fault
        size += len(piece.data)
        index += 1
    if index != count or size != chunk.size_bytes:
        return f"{index} blocks of {size} bytes, not {count} of {chunk.size_bytes}"
    return None


def block_fault(chunk: StoredChunk, block_index: int, data: Block) -> str | None:
    """Why block ``block_index`` of the chunk is not the block committed there, or None. Held
    to its digest when the chunk has digests (a node cannot forge those), else to its CRC."""
    digest = digest_at(chunk.block_digests, block_index)
    if digest is not None:
        return None if block_digest(data) == digest else f"block {block_index} fails its digest"
    if crc32c.crc32c(data) != chunk.block_crcs[block_index]:
        return f"block {block_index} fails its checksum"
    return None
