"""Writing sets of chunks: place → stream → tolerate failures → roll back. One room for all.

Uploads, repair and rebalancing moves all write a *set* of chunks at a time: one chunk per
shard of a segment (or per rebuilt shard), block i of every stripe going to chunk i. Each chunk
streams through its own bounded queue of at most ``write_stripes_in_flight`` framed blocks,
which bounds memory whatever the size; every block is framed once (blockwire) and let go.

A chunk whose node fails is dropped while the set keeps at least ``min_nodes`` distinct nodes
(a degraded write); its pump keeps draining its queue, so the producer never waits on a stream
that is gone. Below that, the first failure is raised and every stream is cancelled. A
``ChunkJob`` remembers every chunk it opened, so one ``roll_back`` deletes them all.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import NoReturn, TypeVar

import crc32c

from diststorage.core.errors import (
    DiststorageError,
    InsufficientStorage,
    NodeUnavailable,
    NotEnoughNodes,
)
from diststorage.core.policy import RedundancyPolicy
from diststorage.gateway.objects.policy_choice import require_writable_nodes
from diststorage.gateway.objects.ports import ChunkDeleter, NodeWriter, NodeWriters, WritableNodes
from diststorage.meta import ChunkRef, PlannedChunk, StoredChunk, block_digest, pack_digests
from diststorage.placement import rank_nodes, share_out

log = logging.getLogger(__name__)

T = TypeVar("T")

# Bytes about to be written, awaited before each block is queued (repair's token bucket).
Throttle = Callable[[int], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class SetOutcome:
    """What a set left behind: chunks stored whole, and chunks dropped with their node.

    A dropped chunk may have been stored after all (its answer was lost): callers queue it as
    garbage rather than leave it unreferenced.
    """

    stored: list[StoredChunk]
    dropped: list[ChunkRef]


class ChunkSetWriter:
    """Places chunks and streams sets of them to nodes; long-lived, one per gateway."""

    def __init__(
        self,
        stripes_in_flight: int,
        nodes: WritableNodes,
        clients: NodeWriters,
        deleter: ChunkDeleter,
    ) -> None:
        self._stripes_in_flight = stripes_in_flight
        self._nodes = nodes
        self._clients = clients
        self._deleter = deleter

    def place(
        self,
        placement_key: str,
        policy: RedundancyPolicy,
        chunk_bytes: int,
        avoid: Collection[str] = (),
        may_share: bool = True,
    ) -> list[str]:
        """A node for each shard of new data: distinct nodes, best first.

        Only when fewer writable nodes than shards have ``chunk_bytes`` free, and only with
        ``may_share``, do the shards beyond them go round again onto nodes with room for one
        more chunk (a last resort that repair undoes); without it a policy is placed on
        distinct nodes or refused.

        Raises NotEnoughNodes with fewer writable nodes than the policy's minimum (than its
        width without ``may_share``); when too few of them have room, InsufficientStorage,
        or NotEnoughNodes while other members are not writable (see ``_refuse_for_room``).
        """
        candidates = [c for c in self._nodes.writable_candidates() if c.node_id not in avoid]
        require_writable_nodes(policy, len(candidates))
        if not may_share and len(candidates) < policy.total_shards:
            raise NotEnoughNodes(
                f"redundancy {policy.spec} needs {policy.total_shards} distinct writable "
                f"nodes; {len(candidates)} are up"
            )
        ranked = rank_nodes(candidates, placement_key, min_free_bytes=chunk_bytes)
        if len(ranked) >= policy.total_shards:
            return ranked[: policy.total_shards]
        needed = policy.min_write_nodes if may_share else policy.total_shards
        if len(ranked) < needed:
            self._refuse_for_room(
                f"only {len(ranked)} writable nodes have {chunk_bytes} bytes free; "
                f"{policy.spec} needs at least {needed}",
                len(candidates),
            )
        free_bytes = {c.node_id: c.free_bytes for c in candidates}
        nodes = share_out(ranked, free_bytes, policy.total_shards, chunk_bytes)
        if len(nodes) < policy.total_shards:
            self._refuse_for_room(
                f"{len(ranked)} writable nodes have room for only {len(nodes)} chunks of "
                f"{chunk_bytes} bytes; {policy.spec} needs {policy.total_shards}",
                len(candidates),
            )
        return nodes

    def _refuse_for_room(self, shortfall: str, candidates: int) -> NoReturn:
        """InsufficientStorage when the cluster's every member was asked; NotEnoughNodes
        (503, worth a retry) while some are down, unheard (a gateway just started) or failed
        this write: their room is not known to be missing."""
        away = self._nodes.member_count() - candidates
        if away > 0:
            raise NotEnoughNodes(f"{shortfall}; {away} more nodes are not writable now")
        raise InsufficientStorage(shortfall)

    def place_emptiest(
        self, placement_key: str, chunk_bytes: int, avoid: Collection[str]
    ) -> list[str]:
        """Writable nodes for rebuilt or moved chunks, the least used (by share of capacity)
        first; possibly none.

        Unlike new writes, repair and moves fill the emptiest nodes first: that is what
        fills a replacement node and evens out a cluster after nodes are added. The
        rendezvous rank breaks ties, and each chunk written counts at once.
        """
        candidates = [c for c in self._nodes.writable_candidates() if c.node_id not in avoid]
        ranked = rank_nodes(candidates, placement_key + "/repair", chunk_bytes)
        order = {node_id: position for position, node_id in enumerate(ranked)}
        return sorted(ranked, key=lambda n: (self._nodes.used_share(n), order[n]))

    def job(self, label: str) -> ChunkJob:
        """A unit of work whose chunks are rolled back together; ``label`` names it in logs."""
        return ChunkJob(self, label)

    def client(self, node_id: str) -> NodeWriter:
        client = self._clients.get(node_id)
        if client is None:
            raise NodeUnavailable(f"node {node_id[:8]} is no longer known")
        return client

    @property
    def stripes_in_flight(self) -> int:
        return self._stripes_in_flight

    def note_stored(self, stored: Sequence[StoredChunk]) -> None:
        """Charges what was stored to its nodes, so placement sees it before a heartbeat."""
        for chunk in stored:
            self._nodes.note_used(chunk.node_id, chunk.size_bytes)

    async def delete_now(self, refs: Sequence[ChunkRef]) -> list[ChunkRef]:
        return await self._deleter.delete_now(refs)


class ChunkJob:
    """The chunk sets of one upload or one repair, and their rollback."""

    def __init__(self, writer: ChunkSetWriter, label: str) -> None:
        self._writer = writer
        self._label = label
        self._opened: list[ChunkRef] = []

    async def write_set(
        self,
        chunks: Sequence[PlannedChunk],
        expected_bytes: int,
        min_nodes: int,
        produce: Callable[[StripeSink], Awaitable[T]],
        throttle: Throttle | None = None,
    ) -> tuple[T, SetOutcome]:
        """Streams the blocks ``produce`` puts into the sink, one chunk per entry of ``chunks``.

        Returns what ``produce`` returned and the set's outcome. Raises the first node failure
        once fewer than ``min_nodes`` distinct nodes are left, or what ``produce`` raised;
        every stream is then cancelled (the chunks stay opened, for ``roll_back``).
        """
        self._opened.extend(ChunkRef(c.chunk_id, c.node_id) for c in chunks)
        sink = StripeSink(self._writer, self._label, chunks, min_nodes, throttle)
        try:
            async with asyncio.TaskGroup() as group:
                pumps = [
                    group.create_task(sink.pump_or_drain(shard, expected_bytes))
                    for shard in range(len(chunks))
                ]
                produced = await produce(sink)
                await sink.end()
        except BaseExceptionGroup as group_error:
            raise _most_telling(group_error) from group_error
        sink.check_tolerable()
        return produced, sink.outcome([pump.result() for pump in pumps])

    async def put_once(
        self, chunks: Sequence[PlannedChunk], blocks: Sequence[bytes], min_nodes: int
    ) -> SetOutcome:
        """A set of one-block chunks, each stored in one round trip; failures as ``write_set``."""
        self._opened.extend(ChunkRef(c.chunk_id, c.node_id) for c in chunks)
        crcs = [crc32c.crc32c(block) for block in blocks]
        digests = [block_digest(block) for block in blocks]
        outcomes = await asyncio.gather(
            *(
                self._put_once(chunk, block, crc)
                for chunk, block, crc in zip(chunks, blocks, crcs, strict=True)
            ),
            return_exceptions=True,
        )
        failures: dict[int, DiststorageError] = {}
        for shard, outcome in enumerate(outcomes):
            if isinstance(outcome, DiststorageError):
                failures[shard] = outcome
            elif isinstance(outcome, BaseException):
                raise outcome
        _check_tolerable(chunks, failures, min_nodes)
        kept = [shard for shard in range(len(chunks)) if shard not in failures]
        stored = [_stored(chunks[s], len(blocks[s]), [crcs[s]], [digests[s]]) for s in kept]
        self._writer.note_stored(stored)
        return SetOutcome(stored, _dropped(chunks, failures))

    async def _put_once(self, chunk: PlannedChunk, block: bytes, crc: int) -> None:
        response = await self._writer.client(chunk.node_id).put_once(chunk.chunk_id, block, crc)
        assert response.size_bytes == len(block), f"node stored {response.size_bytes} bytes"

    async def roll_back(self) -> list[ChunkRef]:
        """Deletes every chunk this job opened; returns those that could not be deleted
        (garbage collection finds them later)."""
        opened, self._opened = self._opened, []
        return await self._writer.delete_now(opened)


@dataclass
class _ShardFeed:
    """Blocks queued for one chunk's stream; ``ended`` once the pump took the end marker."""

    queue: asyncio.Queue[tuple[bytes, int] | None]
    """(block, CRC-32C), in order; None ends the chunk."""
    ended: bool = False
    crcs: list[int] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)
    size_bytes: int = 0


class StripeSink:
    """Where a producer puts each stripe's blocks; one per set being written."""

    def __init__(
        self,
        writer: ChunkSetWriter,
        label: str,
        chunks: Sequence[PlannedChunk],
        min_nodes: int,
        throttle: Throttle | None,
    ) -> None:
        self._writer = writer
        self._label = label
        self._chunks = chunks
        self._min_nodes = min_nodes
        self._throttle = throttle
        depth = writer.stripes_in_flight
        self._feeds = [_ShardFeed(asyncio.Queue(maxsize=depth)) for _ in chunks]
        self._failures: dict[int, DiststorageError] = {}

    async def put(self, blocks: list[bytes]) -> None:
        """Queues block i for chunk i. Each block is handed over (``blocks[i]`` emptied), so
        only the queues hold a stripe's blocks; each stream frames (or seals) its block as it
        sends it. Raises once the set has failed beyond its budget."""
        checked: list[tuple[bytes, int]] = []
        for shard, feed in enumerate(self._feeds):
            block, blocks[shard] = blocks[shard], b""
            crc = crc32c.crc32c(block)
            feed.crcs.append(crc)
            # The node gets the CRC; the digest goes only to the metadata, at commit.
            feed.digests.append(block_digest(block))
            feed.size_bytes += len(block)
            checked.append((block, crc))
        for shard, item in enumerate(checked):
            if self._throttle is not None:
                await self._throttle(len(item[0]))
            if shard not in self._failures:
                await self._feeds[shard].queue.put(item)
        self.check_tolerable()

    async def end(self) -> None:
        for feed in self._feeds:
            await feed.queue.put(None)

    def check_tolerable(self) -> None:
        """Raises the first failure once the chunks left are too few to commit."""
        _check_tolerable(self._chunks, self._failures, self._min_nodes)

    def outcome(self, stored_sizes: Sequence[int]) -> SetOutcome:
        kept = [shard for shard in range(len(self._chunks)) if shard not in self._failures]
        for shard in kept:
            size = self._feeds[shard].size_bytes
            assert stored_sizes[shard] == size, f"node stored {stored_sizes[shard]} of {size}"
        stored = [
            _stored(
                self._chunks[s],
                self._feeds[s].size_bytes,
                self._feeds[s].crcs,
                self._feeds[s].digests,
            )
            for s in kept
        ]
        self._writer.note_stored(stored)
        return SetOutcome(stored, _dropped(self._chunks, self._failures))

    async def pump_or_drain(self, shard: int, expected_bytes: int) -> int:
        """Streams one chunk; when its node fails, records why and only drains from then on."""
        chunk, feed = self._chunks[shard], self._feeds[shard]
        try:
            return await self._pump(chunk, expected_bytes, feed)
        except DiststorageError as error:
            self._failures[shard] = error
            log.warning(
                "%s: shard %d on node %s dropped: %s",
                self._label,
                chunk.shard_index,
                chunk.node_id[:8],
                error,
            )
            # Keep taking blocks so the producer never waits on a stream that is gone.
            while not feed.ended:
                feed.ended = await feed.queue.get() is None
            return 0

    async def _pump(self, chunk: PlannedChunk, expected_bytes: int, feed: _ShardFeed) -> int:
        upload = await self._writer.client(chunk.node_id).start_put(chunk.chunk_id, expected_bytes)
        finished = False
        try:
            while (item := await feed.queue.get()) is not None:
                await upload.send(*item)
                del item  # the block goes as soon as it is sent, not when the next comes
            feed.ended = True
            response = await upload.finish()
            finished = True
            return int(response.size_bytes)
        finally:
            if not finished:
                upload.cancel()


def _check_tolerable(
    chunks: Sequence[PlannedChunk], failures: dict[int, DiststorageError], min_nodes: int
) -> None:
    if not failures:
        return
    nodes_left = {c.node_id for shard, c in enumerate(chunks) if shard not in failures}
    if len(nodes_left) < min_nodes:
        raise next(iter(failures.values()))


def _dropped(
    chunks: Sequence[PlannedChunk], failures: dict[int, DiststorageError]
) -> list[ChunkRef]:
    return [ChunkRef(chunks[shard].chunk_id, chunks[shard].node_id) for shard in failures]


def _stored(
    chunk: PlannedChunk, size_bytes: int, crcs: Sequence[int], digests: Sequence[bytes]
) -> StoredChunk:
    return StoredChunk(
        chunk.chunk_id,
        chunk.node_id,
        chunk.segment_index,
        chunk.shard_index,
        size_bytes,
        tuple(crcs),
        block_digests=pack_digests(digests),
    )


def _most_telling(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report for a failed set: ours before foreign ones."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    ours = [e for e in leaves if isinstance(e, DiststorageError)]
    return (ours or leaves)[0]
