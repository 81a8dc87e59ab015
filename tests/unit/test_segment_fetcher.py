"""The segment fetcher's fallbacks with scripted shard streams: a late shard is replaced by
another, and when none is left a slow node gets patient second tries as long as it makes
progress, while a hung one costs a single patient deadline. What it counts for the node table
and the metrics: blocks that fail verification, per node, and reads that needed parity."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import crc32c
import pytest

from diststorage.core.errors import NodeUnavailable
from diststorage.core.policy import parse_policy
from diststorage.erasure import codec_for
from diststorage.gateway.datapath import NodeStats
from diststorage.gateway.nodeclient import BlockPiece
from diststorage.gateway.objects.geometry import Geometry
from diststorage.gateway.objects.reader import (
    PATIENT_READ_FACTOR,
    PENALTY_S,
    NodePenalties,
    SegmentFetcher,
    ShardSources,
)
from diststorage.meta import NodeLiveness, StoredChunk
from diststorage.testing import FakeClock

POLICY = parse_policy("ec:2+1")
STRIPE = 1024
STRIPES = 6
BLOCK = STRIPE // 2


@dataclass
class ScriptedClient:
    """Serves one chunk's blocks; the n-th stream it opens times out at ``late_at[n]``."""

    blocks: list[bytes]
    late_at: list[int | None]
    opened: list[tuple[int, float]] = field(default_factory=list)  # (first stripe, patience)
    rotten: frozenset[int] = frozenset()  # stripes whose block it sends with a bit flipped

    async def read(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]:
        first = offset // BLOCK
        late = self.late_at[len(self.opened)] if len(self.opened) < len(self.late_at) else None
        self.opened.append((first, patience))
        for stripe in range(first, first + length // BLOCK):
            if stripe == late:
                raise TimeoutError(f"block {stripe} late")
            block = self.blocks[stripe]
            if stripe in self.rotten:
                block = bytes([block[0] ^ 1]) + block[1:]
            yield BlockPiece(block, stripe * BLOCK, crc32c.crc32c(block), True)

    async def read_once(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]:
        """The fetcher's one-round-trip read: only ever for exactly one block."""
        assert length == BLOCK and offset % BLOCK == 0, (offset, length)
        async for piece in self.read(chunk_id, offset, length, wait_for_ready, patience):
            yield piece


class FakeCluster:
    """What SegmentFetcher asks of the parts around it: clients, node states, penalties and
    damage reports."""

    def __init__(self, clients: dict[str, ScriptedClient]) -> None:
        self._clients = clients
        self.penalized: list[str] = []
        self.reported: list[str] = []

    def get(self, node_id: str) -> ScriptedClient | None:
        return self._clients.get(node_id)

    def state(self, node_id: str) -> NodeLiveness:
        return NodeLiveness.UP

    def is_up(self, node_id: str) -> bool:
        return True

    def penalize(self, node_id: str) -> None:
        self.penalized.append(node_id)

    def is_penalized(self, node_id: str) -> bool:
        return False

    def report(self, chunk_id: str) -> None:
        self.reported.append(chunk_id)


def segment(
    late_at: dict[int, list[int | None]],
    shards: tuple[int, ...],
    stats: NodeStats | None = None,
    rotten: dict[int, frozenset[int]] | None = None,
) -> tuple[bytes, SegmentFetcher, dict[int, ScriptedClient]]:
    """An object of STRIPES stripes in one segment; only ``shards`` of it are stored. Faults
    are counted into ``stats``; shard s sends the stripes ``rotten[s]`` corrupt."""
    codec = codec_for(POLICY)
    data = os.urandom(STRIPE * STRIPES)
    encoded = [codec.encode(data[i * STRIPE : (i + 1) * STRIPE]) for i in range(STRIPES)]
    clients: dict[int, ScriptedClient] = {}
    chunks: dict[int, StoredChunk] = {}
    for shard in shards:
        blocks = [stripe[shard] for stripe in encoded]
        bad = (rotten or {}).get(shard, frozenset())
        clients[shard] = ScriptedClient(blocks, late_at.get(shard, []), rotten=bad)
        crcs = tuple(crc32c.crc32c(b) for b in blocks)
        chunks[shard] = StoredChunk(
            f"{shard:032x}", f"node{shard}", 0, shard, BLOCK * STRIPES, crcs
        )
    cluster = FakeCluster({f"node{s}": c for s, c in clients.items()})
    sources = ShardSources(
        clients=cluster,
        nodes=cluster,
        penalties=cluster,
        damage=cluster,
        faults=stats if stats is not None else NodeStats(),
    )
    geometry = Geometry(len(data), STRIPE, STRIPES)
    fetcher = SegmentFetcher(sources, codec, geometry, 0, chunks, last_stripe=STRIPES - 1)
    return data, fetcher, clients


async def read_all(fetcher: SegmentFetcher) -> bytes:
    try:
        return b"".join([b"".join(await fetcher.stripe(s)) for s in range(STRIPES)])
    finally:
        await fetcher.close()


async def test_a_late_data_shard_is_replaced_by_parity_without_waiting_again() -> None:
    data, fetcher, clients = segment({0: [2]}, shards=(0, 1, 2))
    assert await read_all(fetcher) == data
    assert clients[0].opened == [(0, 1.0)]
    assert clients[2].opened == [(2, 1.0)]


async def test_a_slow_node_gets_a_patient_try_each_time_it_made_progress() -> None:
    # Only K shards: shard 0 is late at stripe 1, and again at stripe 4 after catching up.
    data, fetcher, clients = segment({0: [1, 4]}, shards=(0, 1))
    assert await read_all(fetcher) == data
    assert clients[0].opened == [(0, 1.0), (1, PATIENT_READ_FACTOR), (4, PATIENT_READ_FACTOR)]


async def test_a_hung_node_costs_one_patient_try_then_the_read_fails() -> None:
    _, fetcher, clients = segment({0: [3, 3, 3]}, shards=(0, 1))
    with pytest.raises(NodeUnavailable):
        await read_all(fetcher)
    assert clients[0].opened == [(0, 1.0), (3, PATIENT_READ_FACTOR)]


def test_a_penalty_lasts_its_period_in_virtual_time() -> None:
    clock = FakeClock()
    penalties = NodePenalties(clock)
    penalties.penalize("n")
    clock.now += PENALTY_S - 0.1
    assert penalties.is_penalized("n") and not penalties.is_penalized("m")
    clock.now += 0.2
    assert not penalties.is_penalized("n")


async def test_a_read_from_the_data_shards_alone_is_not_degraded() -> None:
    stats = NodeStats()
    data, fetcher, _ = segment({}, shards=(0, 1, 2), stats=stats)
    assert await read_all(fetcher) == data
    assert stats.degraded_reads == 0
    assert [stats.crc_errors(f"node{s}") for s in range(3)] == [0, 0, 0]


async def test_a_corrupt_block_counts_against_its_node_and_the_segment_read_as_degraded() -> None:
    stats = NodeStats()
    # Shard 1 sends stripe 3 corrupt: parity takes over from there, for the rest of the segment.
    data, fetcher, _ = segment({}, shards=(0, 1, 2), stats=stats, rotten={1: frozenset({3})})
    assert await read_all(fetcher) == data
    assert stats.crc_errors("node1") == 1
    assert stats.crc_errors("node0") == stats.crc_errors("node2") == 0
    assert stats.degraded_reads == 1  # once per segment read, not once per stripe
    assert stats.deadline_misses("node1") == 0  # counted by the node clients, not here
