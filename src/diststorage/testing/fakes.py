"""In-memory storage nodes for in-process tests of the gateway's pipelines.

``FakeNodes`` stands where ``NodeClients`` and the ``Janitor`` stand: it hands out a
``FakeNode`` per node id (the Protocols of ``gateway/objects/ports.py``) and deletes chunks at
once. Each node keeps its chunks as lists of blocks and checks every block's CRC as a real node
does. Faults are injected per node, and documented here because tests rely on them exactly:

- ``latency_s``: every call waits this long first (real time; keep it small).
- ``fail_after_blocks``: once the node has taken this many blocks, in all its streams together,
  it refuses every write from then on with ``error()`` (NodeUnavailable by default), as a
  failing disk would; it still answers reads and deletes.
- ``down``: the node fails every call at once, with ``error()``.
- ``hang()``: every call waits, until ``release()``, or fails with NodeUnavailable after
  ``deadline_s`` (the real client's per-call deadline).

A stream that is cancelled leaves nothing behind, as a node discards its temp file; a chunk
exists only once its stream finished.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

import crc32c

from diststorage.core.clock import Clock
from diststorage.core.errors import ChunkNotFound, DataLoss, DiststorageError, NodeUnavailable
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.inventory import Inventory
from diststorage.gateway.nodeclient import BlockPiece
from diststorage.gateway.objects import ChunkSetWriter, ObjectReader, ObjectWriter
from diststorage.gateway.objects.multipart import Multipart
from diststorage.gateway.objects.reader import NodePenalties
from diststorage.gateway.readers import ActiveReads
from diststorage.meta import ChunkRef, MetadataStore, NodeReport

FAKE_CAPACITY_BYTES = 1 << 40

_crc_of = crc32c.crc32c


@dataclass(frozen=True, slots=True)
class Stored:
    """A node's answer to a finished chunk."""

    size_bytes: int


class FakeChunkStream:
    """One chunk being streamed to a ``FakeNode``."""

    def __init__(self, node: FakeNode, chunk_id: str, expected_bytes: int) -> None:
        self._node = node
        self._chunk_id = chunk_id
        self.expected_bytes = expected_bytes
        self._blocks: list[bytes] = []
        self.cancelled = False

    async def send(self, block: bytes, crc32c: int) -> None:
        await self._node.answer()
        self._node.take_block()
        if _crc_of(block) != crc32c:
            raise DataLoss(f"node {self._node.node_id[:8]}: block fails its CRC")
        self._blocks.append(block)

    async def finish(self) -> Stored:
        await self._node.answer()
        self._node.chunks[self._chunk_id] = self._blocks
        return Stored(sum(len(b) for b in self._blocks))

    def cancel(self) -> None:
        self.cancelled = True
        self._blocks = []


class FakeNode:
    """One storage node in memory, with injectable faults (see the module docstring)."""

    def __init__(self, node_id: str) -> None:
        self.node_id = node_id
        self.chunks: dict[str, list[bytes]] = {}
        self.deleted: list[str] = []
        self.latency_s = 0.0
        self.fail_after_blocks: int | None = None
        self.down = False
        self.deadline_s = 5.0
        self.error: Callable[[], DiststorageError] = lambda: NodeUnavailable(
            f"node {self.node_id[:8]} is down"
        )
        self.blocks_taken = 0
        self._released = asyncio.Event()
        self._released.set()

    def hang(self) -> None:
        self._released.clear()

    def release(self) -> None:
        self._released.set()

    @property
    def refuses_writes(self) -> bool:
        limit = self.fail_after_blocks
        return self.down or (limit is not None and self.blocks_taken >= limit)

    async def answer(self) -> None:
        """What every call goes through first: latency, hangs and a node that is down."""
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        try:
            async with asyncio.timeout(self.deadline_s):
                await self._released.wait()
        except TimeoutError as exc:
            raise NodeUnavailable(f"node {self.node_id[:8]} did not answer in time") from exc
        if self.down:
            raise self.error()

    def take_block(self) -> None:
        if self.refuses_writes:
            raise self.error()
        self.blocks_taken += 1

    async def start_put(self, chunk_id: str, expected_bytes: int) -> FakeChunkStream:
        await self.answer()
        if self.refuses_writes:
            raise self.error()
        return FakeChunkStream(self, chunk_id, expected_bytes)

    async def put_once(self, chunk_id: str, data: bytes, crc32c: int) -> Stored:
        await self.answer()
        self.take_block()
        if _crc_of(data) != crc32c:
            raise DataLoss(f"node {self.node_id[:8]}: block fails its CRC")
        self.chunks[chunk_id] = [data]
        return Stored(len(data))

    async def read(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]:
        """The whole blocks that start within [offset, offset + length)."""
        await self.answer()
        blocks = self.chunks.get(chunk_id)
        if blocks is None:
            raise ChunkNotFound(f"node {self.node_id[:8]}: no chunk {chunk_id[:8]}")
        position = 0
        for block in blocks:
            if offset <= position < offset + length:
                await self.answer()
                yield BlockPiece(block, position, _crc_of(block), True)
            position += len(block)

    def read_once(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]:
        return self.read(chunk_id, offset, length, wait_for_ready, patience)

    async def delete(self, chunk_id: str) -> bool:
        await self.answer()
        self.deleted.append(chunk_id)
        return self.chunks.pop(chunk_id, None) is not None


def fake_node_id(index: int) -> str:
    return f"{index + 1:02x}" + "0" * 30


class FakeNodes:
    """A cluster of ``FakeNode``s: node clients for the pipelines, and an immediate janitor."""

    def __init__(self, count: int) -> None:
        self.nodes: dict[str, FakeNode] = {}
        for _ in range(count):
            self.add()

    def get(self, node_id: str) -> FakeNode | None:
        return self.nodes.get(node_id)

    def node(self, index: int) -> FakeNode:
        return list(self.nodes.values())[index]

    def add(self) -> FakeNode:
        node = FakeNode(fake_node_id(len(self.nodes)))
        self.nodes[node.node_id] = node
        return node

    def chunk_ids(self) -> set[str]:
        """Every chunk stored on any node."""
        return {chunk_id for node in self.nodes.values() for chunk_id in node.chunks}

    async def delete_now(self, refs: Sequence[ChunkRef]) -> list[ChunkRef]:
        """Deletes at once; returns the chunks whose node failed the delete."""
        undeleted: list[ChunkRef] = []
        for ref in refs:
            node = self.nodes.get(ref.node_id)
            try:
                if node is None:
                    raise NodeUnavailable(f"node {ref.node_id[:8]} is unknown")
                await node.delete(ref.chunk_id)
            except DiststorageError:
                undeleted.append(ref)
        return undeleted

    def delete_after_reads(self, object_id: str, refs: Sequence[ChunkRef]) -> None:
        """Forgets the chunks at once: in-process tests run no concurrent download."""
        for ref in refs:
            node = self.nodes.get(ref.node_id)
            if node is not None:
                node.chunks.pop(ref.chunk_id, None)
                node.deleted.append(ref.chunk_id)

    async def announce(self, inventory: Inventory) -> None:
        """Heartbeats every node that is not down into a real ``Inventory``."""
        for node in self.nodes.values():
            if node.down:
                continue
            used = sum(len(b) for blocks in node.chunks.values() for b in blocks)
            await inventory.heartbeat(
                NodeReport(
                    node_id=node.node_id,
                    address=f"fake-{node.node_id[:8]}:1",
                    capacity_bytes=FAKE_CAPACITY_BYTES,
                    used_bytes=used,
                    free_bytes=FAKE_CAPACITY_BYTES - used,
                    chunk_count=len(node.chunks),
                )
            )


class BytesBody:
    """A request body (a ``ByteSource``) of bytes in memory, handed over as asked."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    async def read_up_to(self, size: int) -> bytes:
        piece = bytes(self._data[self._at : self._at + size])
        self._at += len(piece)
        return piece


@dataclass
class DamageLog:
    """Damage reports, kept for a test to look at."""

    reported: list[str] = field(default_factory=list)

    def report(self, chunk_id: str) -> None:
        self.reported.append(chunk_id)


@dataclass
class Pipeline:
    """The gateway's write and read pipelines over a real metadata store, a real node table
    and ``FakeNodes``; what a composition root builds, minus servers and workers."""

    settings: GatewaySettings
    store: MetadataStore
    inventory: Inventory
    nodes: FakeNodes
    chunk_sets: ChunkSetWriter
    writer: ObjectWriter
    reader: ObjectReader
    damage: DamageLog
    clock: Clock
    multipart: Multipart


async def in_memory_pipeline(
    settings: GatewaySettings, store: MetadataStore, node_count: int, clock: Clock
) -> Pipeline:
    """Pipelines whose nodes are ``node_count`` fresh ``FakeNode``s, announced as up."""
    inventory = Inventory(store, settings.node_timeout_s, settings.effective_suspect_s, clock)
    nodes = FakeNodes(node_count)
    await nodes.announce(inventory)
    chunk_sets = ChunkSetWriter(settings.write_stripes_in_flight, inventory, nodes, nodes)
    writer = ObjectWriter(settings, store, inventory, chunk_sets, nodes, "9" * 32)
    damage = DamageLog()
    reader = ObjectReader(settings, inventory, nodes, NodePenalties(clock), damage)
    multipart = Multipart(settings, store, writer, reader, ActiveReads(), nodes)
    return Pipeline(
        settings, store, inventory, nodes, chunk_sets, writer, reader, damage, clock, multipart
    )
