"""The chunk-set writer on its own: blocks reach their chunks whole with their CRCs, queues
stay bounded by ``write_stripes_in_flight``, failures are tolerated down to ``min_nodes``
distinct nodes and no further, a throttle sees every block, and a job's rollback deletes
every chunk it opened."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import crc32c
import pytest

from diststorage.core.errors import InsufficientStorage, NodeUnavailable, NotEnoughNodes
from diststorage.core.ids import new_id
from diststorage.core.policy import parse_policy
from diststorage.gateway.objects import ChunkSetWriter
from diststorage.gateway.objects.chunkset import StripeSink
from diststorage.meta import PlannedChunk, block_digest, pack_digests
from diststorage.placement import Candidate
from diststorage.testing import FakeNodes

BLOCK = 512
DEPTH = 2


class Nodes:
    """Writable nodes with free space, and what was charged to them."""

    def __init__(self, node_ids: list[str], free_bytes: int = 1 << 30) -> None:
        self._free = dict.fromkeys(node_ids, free_bytes)
        self.used: dict[str, int] = {}
        self.members_away = 0

    def writable_candidates(self) -> list[Candidate]:
        return [Candidate(node_id, free) for node_id, free in self._free.items()]

    def member_count(self) -> int:
        return len(self._free) + self.members_away

    def set_free(self, node_id: str, free_bytes: int) -> None:
        self._free[node_id] = free_bytes

    def used_share(self, node_id: str) -> float:
        return self.used.get(node_id, 0) / (1 << 30)

    def note_used(self, node_id: str, size_bytes: int) -> None:
        self.used[node_id] = self.used.get(node_id, 0) + size_bytes


def cluster(count: int = 3) -> tuple[FakeNodes, Nodes, ChunkSetWriter]:
    fakes = FakeNodes(count)
    nodes = Nodes(list(fakes.nodes))
    return fakes, nodes, ChunkSetWriter(DEPTH, nodes, fakes, fakes)


def planned(fakes: FakeNodes) -> list[PlannedChunk]:
    return [PlannedChunk(new_id(), node_id, 0, i) for i, node_id in enumerate(fakes.nodes)]


def stripes(count: int, width: int) -> list[list[bytes]]:
    return [[os.urandom(BLOCK) for _ in range(width)] for _ in range(count)]


def feeding(blocks: list[list[bytes]]) -> tuple[list[int], Callable[[StripeSink], Awaitable[int]]]:
    put: list[int] = []

    async def produce(sink: StripeSink) -> int:
        for stripe in blocks:
            await sink.put(list(stripe))
            put.append(len(put))
        return len(put)

    return put, produce


async def test_every_block_reaches_its_chunk_with_its_crc() -> None:
    fakes, nodes, writer = cluster()
    chunks = planned(fakes)
    blocks = stripes(5, 3)
    _, produce = feeding(blocks)
    job = writer.job("test")
    count, outcome = await job.write_set(chunks, 5 * BLOCK, 3, produce)
    assert count == 5 and outcome.dropped == []
    for shard, stored in enumerate(outcome.stored):
        column = [stripe[shard] for stripe in blocks]
        assert stored.size_bytes == 5 * BLOCK
        assert stored.block_crcs == tuple(crc32c.crc32c(b) for b in column)
        assert stored.block_digests == pack_digests(block_digest(b) for b in column)
        assert fakes.nodes[stored.node_id].chunks[stored.chunk_id] == column
        assert nodes.used[stored.node_id] == 5 * BLOCK


async def test_a_stuck_stream_holds_the_producer_at_its_queue_bound() -> None:
    fakes, _, writer = cluster()
    stuck = fakes.node(0)
    stuck.hang()
    put, produce = feeding(stripes(10, 3))
    job = writer.job("test")
    task = asyncio.create_task(job.write_set(planned(fakes), 10 * BLOCK, 3, produce))
    await asyncio.sleep(0.05)
    # The stuck stream took nothing yet: its queue holds DEPTH stripes' blocks, and the
    # producer waits to queue the next one.
    assert len(put) == DEPTH
    stuck.release()
    count, outcome = await task
    assert count == 10 and outcome.dropped == []


async def test_a_failed_chunk_within_the_budget_is_dropped() -> None:
    fakes, _, writer = cluster()
    fakes.node(1).fail_after_blocks = 2
    _, produce = feeding(stripes(6, 3))
    chunks = planned(fakes)
    _, outcome = await writer.job("test").write_set(chunks, 6 * BLOCK, 2, produce)
    assert [ref.node_id for ref in outcome.dropped] == [chunks[1].node_id]
    assert [c.shard_index for c in outcome.stored] == [0, 2]


async def test_failures_past_the_budget_raise_and_roll_back_deletes_every_chunk() -> None:
    fakes, _, writer = cluster()
    fakes.node(1).fail_after_blocks = 2
    _, produce = feeding(stripes(6, 3))
    job = writer.job("test")
    with pytest.raises(NodeUnavailable):
        await job.write_set(planned(fakes), 6 * BLOCK, 3, produce)
    assert await job.roll_back() == []
    assert fakes.chunk_ids() == set()


async def test_what_the_producer_raises_is_raised_and_every_stream_cancelled() -> None:
    fakes, _, writer = cluster()

    async def produce(sink: StripeSink) -> None:
        await sink.put([os.urandom(BLOCK) for _ in range(3)])
        raise InsufficientStorage("the body is bad")

    with pytest.raises(InsufficientStorage):
        await writer.job("test").write_set(planned(fakes), BLOCK, 3, produce)
    assert fakes.chunk_ids() == set()


async def test_the_throttle_sees_every_block_before_it_is_queued() -> None:
    fakes, _, writer = cluster()
    seen: list[int] = []

    async def throttle(size_bytes: int) -> None:
        seen.append(size_bytes)

    _, produce = feeding(stripes(4, 3))
    await writer.job("test").write_set(planned(fakes), 4 * BLOCK, 3, produce, throttle=throttle)
    assert seen == [BLOCK] * 12


async def test_one_block_chunks_are_stored_in_one_round_trip_each() -> None:
    fakes, _, writer = cluster()
    fakes.node(2).down = True
    chunks = planned(fakes)
    blocks = [os.urandom(100) for _ in range(3)]
    outcome = await writer.job("test").put_once(chunks, blocks, 2)
    assert [c.shard_index for c in outcome.stored] == [0, 1]
    assert [ref.chunk_id for ref in outcome.dropped] == [chunks[2].chunk_id]
    assert fakes.nodes[chunks[0].node_id].chunks[chunks[0].chunk_id] == [blocks[0]]
    assert [c.block_digests for c in outcome.stored] == [block_digest(b) for b in blocks[:2]]


def test_new_data_goes_round_again_only_when_nodes_are_short() -> None:
    fakes, _, writer = cluster(5)
    policy = parse_policy("ec:4+2")
    placed = writer.place("key/0", policy, BLOCK)
    assert len(placed) == 6 and len(set(placed)) == 5
    # The data shards take distinct nodes; only what is left over goes round again.
    assert len(set(placed[:5])) == 5
    # M nodes down: K distinct nodes still take a write, two of them two shards each.
    placed = writer.place("key/0", policy, BLOCK, avoid=set(list(fakes.nodes)[:1]))
    assert len(placed) == 6 and len(set(placed)) == 4
    with pytest.raises(NotEnoughNodes):
        writer.place("key/0", policy, BLOCK, avoid=set(list(fakes.nodes)[:2]))


def test_wide_enough_clusters_never_double_up() -> None:
    _, _, writer = cluster(6)
    policy = parse_policy("ec:4+2")
    for index in range(50):
        assert len(set(writer.place(f"key/{index}", policy, BLOCK))) == 6


def test_a_policy_that_may_not_share_is_placed_on_distinct_nodes_or_refused() -> None:
    fakes, _, writer = cluster(5)
    policy = parse_policy("ec:4+2")
    with pytest.raises(NotEnoughNodes):
        writer.place("key/0", policy, BLOCK, may_share=False)
    ids = [*fakes.nodes, new_id()]
    nodes = Nodes(ids)
    nodes.set_free(ids[0], BLOCK - 1)
    with pytest.raises(InsufficientStorage):
        ChunkSetWriter(DEPTH, nodes, fakes, fakes).place("key/0", policy, BLOCK, may_share=False)


def test_a_node_takes_a_second_shard_only_with_room_for_both() -> None:
    fakes, _, _ = cluster(4)
    ids = list(fakes.nodes)
    nodes = Nodes(ids, free_bytes=BLOCK)  # room for one chunk each: nowhere to double up
    writer = ChunkSetWriter(DEPTH, nodes, fakes, fakes)
    policy = parse_policy("ec:4+2")
    with pytest.raises(InsufficientStorage):
        writer.place("key/0", policy, BLOCK)
    nodes.set_free(ids[1], 2 * BLOCK)
    nodes.set_free(ids[3], 3 * BLOCK)
    placed = writer.place("key/0", policy, BLOCK)
    assert sorted(placed[4:]) == sorted([ids[1], ids[3]])
    assert placed.count(ids[1]) == placed.count(ids[3]) == 2


def test_no_room_is_a_retry_while_other_members_are_not_writable() -> None:
    fakes, _, _ = cluster(6)
    ids = list(fakes.nodes)
    nodes = Nodes(ids, free_bytes=BLOCK)
    for full in ids[:3]:
        nodes.set_free(full, 0)
    writer = ChunkSetWriter(DEPTH, nodes, fakes, fakes)
    policy = parse_policy("ec:4+2")
    with pytest.raises(InsufficientStorage):
        writer.place("key/0", policy, BLOCK)
    # A member not heard from (down, or not yet heard by a gateway that just started) may
    # well have room: the cluster is not known to be full.
    nodes.members_away = 1
    with pytest.raises(NotEnoughNodes, match="1 more nodes are not writable"):
        writer.place("key/0", policy, BLOCK)
    # Nor is it when the nodes short of room are ones this write already failed on.
    nodes.members_away = 0
    with pytest.raises(NotEnoughNodes):
        writer.place("key/0", policy, BLOCK, avoid={ids[5]})


def test_rebuilt_chunks_go_to_the_emptiest_nodes_first() -> None:
    fakes, nodes, writer = cluster(3)
    first, second, third = fakes.nodes
    nodes.note_used(first, 3000)
    nodes.note_used(second, 1000)
    assert writer.place_emptiest("key/0", BLOCK, avoid={second}) == [third, first]
