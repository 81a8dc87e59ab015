"""Block digests through the gateway's parts, in process: a chunk set records one digest per
block, the store keeps them (on commit and on repair's swap, both backends), and the segment
fetcher holds every block to its digest: a block with the right CRC but other bytes is damage,
reported, and read around; a chunk without digests is held to its CRCs."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import crc32c
import pytest

from diststorage.core.errors import DataLoss
from diststorage.core.ids import new_id
from diststorage.core.policy import parse_policy
from diststorage.erasure import codec_for
from diststorage.gateway.nodeclient import BlockPiece
from diststorage.gateway.objects.geometry import Geometry
from diststorage.gateway.objects.reader import SegmentFetcher, ShardSources
from diststorage.meta import (
    ChunkRef,
    MetadataStore,
    NewObject,
    NodeLiveness,
    PlannedChunk,
    StoredChunk,
    block_digest,
    pack_digests,
)
from diststorage.meta.digests import NO_DIGESTS

POLICY = parse_policy("ec:2+1")
STRIPE = 1024
STRIPES = 4
BLOCK = STRIPE // 2


@dataclass
class Shard:
    """One chunk's blocks as its node serves them: ``served`` may differ from what was
    committed, with the committed CRC sent along all the same (what a forger does)."""

    blocks: list[bytes]
    served: list[bytes]
    opened: int = 0

    async def read(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]:
        self.opened += 1
        for stripe in range(offset // BLOCK, (offset + length) // BLOCK):
            crc = crc32c.crc32c(self.blocks[stripe])
            yield BlockPiece(self.served[stripe], stripe * BLOCK, crc, True)

    read_once = read


@dataclass
class Cluster:
    """Every node up and unpenalized; damage reports collected."""

    shards: dict[str, Shard]
    reported: list[str] = field(default_factory=list)

    def get(self, node_id: str) -> Shard | None:
        return self.shards.get(node_id)

    def state(self, node_id: str) -> NodeLiveness:
        return NodeLiveness.UP

    def is_up(self, node_id: str) -> bool:
        return True

    def penalize(self, node_id: str) -> None:
        pass

    def is_penalized(self, node_id: str) -> bool:
        return False

    def report(self, chunk_id: str) -> None:
        self.reported.append(chunk_id)


def segment(
    served: dict[int, dict[int, bytes]], with_digests: bool
) -> tuple[bytes, SegmentFetcher, Cluster]:
    """A segment of STRIPES stripes on three shards; ``served[shard][stripe]`` replaces what
    that shard's node sends for the block."""
    codec = codec_for(POLICY)
    data = os.urandom(STRIPE * STRIPES)
    encoded = [codec.encode(data[i * STRIPE : (i + 1) * STRIPE]) for i in range(STRIPES)]
    shards: dict[str, Shard] = {}
    chunks: dict[int, StoredChunk] = {}
    for shard in range(POLICY.total_shards):
        blocks = [stripe[shard] for stripe in encoded]
        sent = [served.get(shard, {}).get(i, b) for i, b in enumerate(blocks)]
        shards[f"node{shard}"] = Shard(blocks, sent)
        digests = pack_digests(block_digest(b) for b in blocks) if with_digests else NO_DIGESTS
        crcs = tuple(crc32c.crc32c(b) for b in blocks)
        chunks[shard] = StoredChunk(
            f"{shard:032x}", f"node{shard}", 0, shard, BLOCK * STRIPES, crcs, "ok", digests
        )
    cluster = Cluster(shards)
    sources = ShardSources(clients=cluster, nodes=cluster, penalties=cluster, damage=cluster)
    geometry = Geometry(len(data), STRIPE, STRIPES)
    return data, SegmentFetcher(sources, codec, geometry, 0, chunks, STRIPES - 1), cluster


async def read_all(fetcher: SegmentFetcher) -> bytes:
    try:
        return b"".join([b"".join(await fetcher.stripe(s)) for s in range(STRIPES)])
    finally:
        await fetcher.close()


def forged(length: int) -> bytes:
    return b"F" * length


async def test_a_block_that_is_not_the_committed_one_is_read_around_and_reported() -> None:
    data, fetcher, cluster = segment({0: {2: forged(BLOCK)}}, with_digests=True)
    assert await read_all(fetcher) == data
    assert cluster.reported == [f"{0:032x}"]
    assert cluster.shards["node2"].opened == 1  # parity took over


async def test_a_forged_block_on_too_many_shards_is_data_loss_never_served() -> None:
    served = {0: {1: forged(BLOCK)}, 1: {1: forged(BLOCK)}}
    _, fetcher, cluster = segment(served, with_digests=True)
    with pytest.raises(DataLoss, match="digest"):
        await read_all(fetcher)
    assert sorted(cluster.reported) == [f"{0:032x}", f"{1:032x}"]


async def test_a_chunk_without_digests_is_held_to_its_crcs() -> None:
    # What the node sends is not what was committed, nor its CRC: bit rot, caught by the CRC.
    data, fetcher, cluster = segment({1: {3: forged(BLOCK)}}, with_digests=False)
    assert await read_all(fetcher) == data
    assert cluster.reported == [f"{1:032x}"]


async def test_the_store_keeps_the_digests_of_committed_and_rebuilt_chunks(
    store: MetadataStore,
) -> None:
    new = NewObject(new_id(), "default", "k", "text/plain", "ec:2+1", STRIPE, 8, new_id())
    planned = [PlannedChunk(new_id(), f"node{s}", 0, s) for s in range(3)]
    digests = [pack_digests([block_digest(bytes([s, b])) for b in range(3)]) for s in range(3)]
    await store.begin_upload(new, planned)
    stored = [
        StoredChunk(c.chunk_id, c.node_id, 0, c.shard_index, 3, (1, 2, 3), "ok", d)
        for c, d in zip(planned, digests, strict=True)
    ]
    await store.commit_upload(new.object_id, 3 * STRIPE, "a" * 32, stored, replace=False)
    layout = await store.get_layout("default", "k")
    assert [c.block_digests for c in layout.chunks] == digests

    rebuilt = StoredChunk(new_id(), "node9", 0, 1, 3, (4, 5, 6), "ok", digests[0][::-1])
    retired = [ChunkRef(planned[1].chunk_id, planned[1].node_id)]
    assert await store.maintenance.replace_chunks(new.object_id, retired, [rebuilt])
    segment_layout = await store.maintenance.segment_layout(new.object_id, 0)
    assert segment_layout is not None
    by_shard = {c.shard_index: c.block_digests for c in segment_layout.chunks}
    assert by_shard == {0: digests[0], 1: digests[0][::-1], 2: digests[2]}


async def test_chunks_committed_without_digests_come_back_with_none(
    store: MetadataStore,
) -> None:
    new = NewObject(new_id(), "default", "old", "text/plain", "ec:2+1", STRIPE, 8, new_id())
    planned = PlannedChunk(new_id(), "node0", 0, 0)
    await store.begin_upload(new, [planned])
    old = StoredChunk(planned.chunk_id, "node0", 0, 0, 3, (1,))
    await store.commit_upload(new.object_id, 3, "a" * 32, [old], replace=False)
    layout = await store.get_layout("default", "old")
    assert layout.chunks[0].block_digests == NO_DIGESTS
