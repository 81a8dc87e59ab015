"""The durability histogram's database side on SQLite and PostgreSQL: the spare of each at-risk
segment counted in nodes (doubled shards, damaged chunks, unavailable nodes), grouped by
policy, and the stripes stored per policy (multipart parts counted once, inline objects apart).

Objects here have 4 KiB stripes and two stripes per segment; shard ``i`` of every segment sits
on ``NODES[i]`` unless a test says otherwise.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from diststorage.core.ids import new_id
from diststorage.core.policy import parse_policy
from diststorage.gateway.workers.durability import durability_histogram
from diststorage.meta import (
    DEFAULT_NAMESPACE,
    ChunkState,
    DegradedSegment,
    ListedPart,
    MaintenanceStore,
    MetadataStore,
    NewObject,
    NewUpload,
    ObjectAttributes,
    PlannedChunk,
    SpareStripes,
    StoredChunk,
    StripeTotals,
    part_key,
)
from diststorage.meta.durability import node_losses_survived

EC = "ec:4+2"
REPLICAS = "replicate:3"
STRIPE_BYTES = 4096
SEGMENT_STRIPES = 2
NODES = tuple(f"{n:032x}" for n in range(1, 7))

Placement = Callable[[int, int], str]


def spread(segment: int, shard: int) -> str:
    return NODES[shard]


def stripes_of(size_bytes: int) -> int:
    return -(-size_bytes // STRIPE_BYTES)


@dataclass(frozen=True)
class Stored:
    object_id: str
    chunks: tuple[PlannedChunk, ...]

    def chunk(self, segment: int, shard: int) -> PlannedChunk:
        (found,) = (c for c in self.chunks if (c.segment_index, c.shard_index) == (segment, shard))
        return found


def new_object(policy: str, key: str) -> NewObject:
    return NewObject(
        new_id(),
        DEFAULT_NAMESPACE,
        key,
        "text/plain",
        policy,
        STRIPE_BYTES,
        SEGMENT_STRIPES,
        new_id(),
    )


def planned_chunks(policy: str, size_bytes: int, place: Placement) -> tuple[PlannedChunk, ...]:
    shards = parse_policy(policy).total_shards
    segments = -(-stripes_of(size_bytes) // SEGMENT_STRIPES)
    return tuple(
        PlannedChunk(new_id(), place(segment, shard), segment, shard)
        for segment in range(segments)
        for shard in range(shards)
    )


def stored(chunk: PlannedChunk) -> StoredChunk:
    return StoredChunk(
        chunk.chunk_id, chunk.node_id, chunk.segment_index, chunk.shard_index, 100, (1,)
    )


async def put(
    store: MetadataStore,
    size_bytes: int,
    policy: str = EC,
    place: Placement = spread,
    degraded: Sequence[DegradedSegment] = (),
) -> Stored:
    new = new_object(policy, f"key-{new_id()}")
    planned = planned_chunks(policy, size_bytes, place)
    await store.begin_upload(new, planned)
    await store.commit_upload(
        new.object_id,
        size_bytes,
        "0" * 32,
        [stored(c) for c in planned],
        replace=False,
        degraded=degraded,
    )
    return Stored(new.object_id, planned)


async def put_inline(store: MetadataStore, key: str) -> None:
    await store.commit_inline(new_object("inline", key), b"small", "0" * 32, replace=False)


async def multipart_object(store: MetadataStore, sizes: Sequence[int]) -> list[Stored]:
    """A completed multipart object of ec:4+2 parts of these sizes, and one inline part of
    an upload still open."""
    upload_id = new_id()
    await store.multipart.create_upload(
        NewUpload(upload_id, DEFAULT_NAMESPACE, "mp", "video/mp4", ObjectAttributes(), None, None)
    )
    parts, listed = [], []
    for number, size in enumerate(sizes, start=1):
        new = new_object(EC, part_key(upload_id, number))
        planned = planned_chunks(EC, size, spread)
        await store.begin_upload(new, planned)
        md5 = hashlib.md5(f"{number}".encode()).hexdigest()
        await store.multipart.commit_part(
            new.object_id, upload_id, number, size, md5, [stored(c) for c in planned]
        )
        parts.append(Stored(new.object_id, planned))
        listed.append(ListedPart(number, md5))
    await store.multipart.complete(
        upload_id, DEFAULT_NAMESPACE, "mp", listed, lambda *_: "", 0, True, None
    )
    still_open = new_id()
    await store.multipart.create_upload(
        NewUpload(
            still_open, DEFAULT_NAMESPACE, "open", "text/plain", ObjectAttributes(), None, None
        )
    )
    await store.multipart.commit_inline_part(
        new_object("inline", part_key(still_open, 1)), b"part", "0" * 32, still_open, 1
    )
    return parts


async def at_risk(maintenance: MaintenanceStore, out: Sequence[str] = ()) -> set[SpareStripes]:
    return set((await maintenance.repair_backlog(list(out))).at_risk)


async def test_totals_count_every_stored_stripe_once_per_policy(store: MetadataStore) -> None:
    """A multipart object's bytes are its parts' (counted as parts, not again as the object);
    inline objects and inline parts are counted apart; a pending upload is not stored yet."""
    await put(store, 5 * STRIPE_BYTES)
    await put(store, 3 * STRIPE_BYTES + 1, REPLICAS)
    await put_inline(store, "a")
    await put_inline(store, "b")
    await multipart_object(store, [3 * STRIPE_BYTES, STRIPE_BYTES - 1])
    pending = new_object(EC, "pending")
    await store.begin_upload(pending, planned_chunks(EC, STRIPE_BYTES, spread))
    totals = await store.maintenance.stripe_totals()
    assert totals == StripeTotals({EC: 5 + 3 + 1, REPLICAS: 4}, 3)
    assert await at_risk(store.maintenance) == set()


async def test_an_unavailable_node_costs_each_segment_with_a_shard_there_one_spare(
    store: MetadataStore,
) -> None:
    await put(store, 5 * STRIPE_BYTES)  # segments of 2, 2 and 1 stripes
    await put(store, 3 * STRIPE_BYTES, REPLICAS)  # copies on NODES[0..2]
    maintenance = store.maintenance
    assert await at_risk(maintenance, [NODES[0]]) == {
        SpareStripes(EC, 1, segments=3, stripes=5),
        SpareStripes(REPLICAS, 1, segments=2, stripes=3),
    }
    # No replica on NODES[5]: only the ec:4+2 segments are at risk.
    assert await at_risk(maintenance, [NODES[5]]) == {SpareStripes(EC, 1, 3, 5)}
    assert await at_risk(maintenance, NODES[:2]) == {
        SpareStripes(EC, 0, 3, 5),
        SpareStripes(REPLICAS, 0, 2, 3),
    }
    assert await at_risk(maintenance, NODES[:3]) == {
        SpareStripes(EC, -1, 3, 5),
        SpareStripes(REPLICAS, -1, 2, 3),
    }
    backlog = await maintenance.repair_backlog(list(NODES[:3]))
    assert backlog.fewest_spare_shards == -1
    # Most at risk first.
    assert [group.spare for group in backlog.at_risk] == [-1, -1]


async def test_two_shards_on_one_node_count_as_two_lost_with_it(store: MetadataStore) -> None:
    """Written while a node was down: shards 0 and 5 of segment 0 both on NODES[0]. Every
    shard is there, yet the segment survives one more lost node, not two."""
    doubled = await put(
        store,
        3 * STRIPE_BYTES,
        place=lambda segment, shard: NODES[0] if (segment, shard) == (0, 5) else NODES[shard],
        degraded=[DegradedSegment(0, 2, 1)],
    )
    assert doubled.chunk(0, 5).node_id == NODES[0]
    maintenance = store.maintenance
    # Segment 1 is not at risk at all: it is in the full bar.
    assert await at_risk(maintenance) == {SpareStripes(EC, 1, 1, 2)}
    assert await at_risk(maintenance, [NODES[1]]) == {
        SpareStripes(EC, 0, 1, 2),
        SpareStripes(EC, 1, 1, 1),
    }
    assert await at_risk(maintenance, [NODES[0]]) == {
        SpareStripes(EC, 0, 1, 2),
        SpareStripes(EC, 1, 1, 1),
    }
    assert await at_risk(maintenance, NODES[:2]) == {
        SpareStripes(EC, -1, 1, 2),
        SpareStripes(EC, 0, 1, 1),
    }


async def test_damaged_chunks_count_as_lost_and_a_node_out_that_holds_one_costs_nothing_more(
    store: MetadataStore,
) -> None:
    whole = await put(store, 4 * STRIPE_BYTES)  # two segments of two stripes
    maintenance = store.maintenance
    await maintenance.mark_chunks([whole.chunk(1, 2).chunk_id], ChunkState.DAMAGED)
    assert await at_risk(maintenance) == {SpareStripes(EC, 1, 1, 2)}
    assert await at_risk(maintenance, [NODES[2]]) == {
        SpareStripes(EC, 1, 2, 4),
    }
    await maintenance.mark_chunks(
        [whole.chunk(1, 3).chunk_id, whole.chunk(1, 4).chunk_id], ChunkState.DAMAGED
    )
    assert await at_risk(maintenance) == {SpareStripes(EC, -1, 1, 2)}


async def test_parts_at_risk_count_under_their_own_policy(store: MetadataStore) -> None:
    parts = await multipart_object(store, [3 * STRIPE_BYTES, STRIPE_BYTES])
    maintenance = store.maintenance
    await maintenance.mark_chunks([parts[0].chunk(0, 0).chunk_id], ChunkState.DAMAGED)
    assert await at_risk(maintenance) == {SpareStripes(EC, 1, 1, 2)}
    assert await at_risk(maintenance, [NODES[1]]) == {
        SpareStripes(EC, 0, 1, 2),
        SpareStripes(EC, 1, 2, 2),
    }


async def test_the_histogram_puts_every_stripe_not_at_risk_in_the_full_bar(
    store: MetadataStore,
) -> None:
    await put(store, 5 * STRIPE_BYTES)
    await put(store, 3 * STRIPE_BYTES, REPLICAS)
    doubled = await put(
        store,
        2 * STRIPE_BYTES,
        place=lambda segment, shard: NODES[0] if shard == 5 else NODES[shard],
        degraded=[DegradedSegment(0, 2, 1)],
    )
    await store.maintenance.mark_chunks([doubled.chunk(0, 1).chunk_id], ChunkState.DAMAGED)
    await put_inline(store, "small")
    maintenance = store.maintenance
    backlog = await maintenance.repair_backlog([NODES[5]])
    histogram = durability_histogram(await maintenance.stripe_totals(), backlog.at_risk, EC)
    assert [p.as_json() for p in histogram] == [
        {
            "policy": EC,
            "shards": 6,
            "needed": 4,
            # The 5 stripes of the first object lost shard 5 with NODES[5]; the doubled
            # object's shard 5 is on NODES[0], but shard 1 is damaged and NODES[0] holds two.
            "stripes_by_spare": {"2": 0, "1": 5, "0": 2},
            "unreadable_stripes": 0,
        },
        {
            "policy": REPLICAS,
            "shards": 3,
            "needed": 1,
            "stripes_by_spare": {"2": 3, "1": 0, "0": 0},
            "unreadable_stripes": 0,
        },
    ]


def survived_by_brute_force(shards_by_node: dict[str, set[int]], needed: int) -> int:
    """The most nodes whose loss, whichever they are, leaves ``needed`` distinct shards."""
    nodes = [n for n, shards in shards_by_node.items() if shards]
    distinct = len(set().union(*shards_by_node.values()))
    if distinct < needed:
        return distinct - needed
    survived = 0
    for lost in range(1, len(nodes) + 1):
        for gone in itertools.combinations(nodes, lost):
            kept = set().union(*(shards_by_node[n] for n in nodes if n not in gone))
            if len(kept) < needed:
                return survived
        survived = lost
    return survived


def test_node_losses_survived_is_exact_for_every_layout_without_copies() -> None:
    """Shards 0..5 dealt out to up to six nodes in every way, some lost: the count matches
    trying every set of lost nodes."""
    for dealt in itertools.product(range(7), repeat=6):  # node 6: the shard is gone
        by_node: dict[str, set[int]] = {}
        for shard, node in enumerate(dealt):
            if node < 6:
                by_node.setdefault(f"n{node}", set()).add(shard)
        assert node_losses_survived(by_node, 4) == survived_by_brute_force(by_node, 4), dealt
