"""The maintenance contract (repair queue, chunk states, node lifecycle, garbage collection) and
degraded commits: the same suite against SQLite and PostgreSQL.

Objects here are ec:4+2 with small stripes and two stripes per segment, so that a few
kilobytes make objects of several segments, the last one often partial.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from diststorage.core.errors import DiststorageError
from diststorage.core.ids import new_id
from diststorage.meta import (
    ChunkRef,
    ChunkState,
    DegradedSegment,
    MaintenanceStore,
    MetadataStore,
    NewObject,
    NodeInfo,
    NodeLifecycle,
    PlannedChunk,
    RepairTaskRef,
    StoredChunk,
)
from diststorage.meta.durability import node_losses_survived

POLICY = "ec:4+2"
SHARDS = 6
NEEDED = 4
STRIPE_BYTES = 4096
SEGMENT_STRIPES = 2
NODES = tuple(f"{n:032x}" for n in range(1, SHARDS + 1))
OTHER_NODE = f"{99:032x}"
# Far enough from now that a slow database cannot blur "before" and "after".
LONG_S = 3600.0
MANY = 1000  # a limit no test reaches

Placement = Callable[[int, int], str]
"""(segment, shard) → the node that holds the chunk."""


@pytest.fixture
def maintenance(store: MetadataStore) -> MaintenanceStore:
    return store.maintenance


# -- objects ---------------------------------------------------------------------------------


def stripes_of(size_bytes: int) -> int:
    return -(-size_bytes // STRIPE_BYTES)


def segments_of(size_bytes: int) -> int:
    return -(-stripes_of(size_bytes) // SEGMENT_STRIPES)


def stripes_in_segment(size_bytes: int, segment: int) -> int:
    return min(SEGMENT_STRIPES, stripes_of(size_bytes) - segment * SEGMENT_STRIPES)


def chunk_bytes(segment: int, shard: int) -> int:
    """Distinct sizes, so that ordering by size is visible."""
    return 1000 + 100 * segment + shard


@dataclass(frozen=True)
class Upload:
    object_id: str
    key: str
    size_bytes: int
    planned: tuple[PlannedChunk, ...]

    def chunk(self, segment: int, shard: int) -> PlannedChunk:
        (found,) = (c for c in self.planned if (c.segment_index, c.shard_index) == (segment, shard))
        return found

    def on_node(self, node_id: str) -> list[PlannedChunk]:
        return [c for c in self.planned if c.node_id == node_id]


def ref(chunk: PlannedChunk | StoredChunk) -> ChunkRef:
    return ChunkRef(chunk.chunk_id, chunk.node_id)


def stored(chunk: PlannedChunk) -> StoredChunk:
    size = chunk_bytes(chunk.segment_index, chunk.shard_index)
    return StoredChunk(
        chunk.chunk_id, chunk.node_id, chunk.segment_index, chunk.shard_index, size, (size, 7)
    )


def spread(segment: int, shard: int) -> str:
    """The usual placement: shard ``i`` of every segment on ``NODES[i]``."""
    return NODES[shard]


def moved(onto: str, *chunks: tuple[int, int]) -> Placement:
    """The usual placement, but the given (segment, shard) chunks on node ``onto``."""
    return lambda segment, shard: onto if (segment, shard) in chunks else spread(segment, shard)


async def begin(
    store: MetadataStore, size_bytes: int, place: Placement = spread, key: str | None = None
) -> Upload:
    """A pending upload with every chunk of every segment planned."""
    key = key or f"key-{new_id()}"
    new = NewObject(
        new_id(), "default", key, "text/plain", POLICY, STRIPE_BYTES, SEGMENT_STRIPES, new_id()
    )
    planned = tuple(
        PlannedChunk(new_id(), place(segment, shard), segment, shard)
        for segment in range(segments_of(size_bytes))
        for shard in range(SHARDS)
    )
    await store.begin_upload(new, planned)
    return Upload(new.object_id, key, size_bytes, planned)


async def commit(
    store: MetadataStore,
    upload: Upload,
    dropped: Sequence[PlannedChunk] = (),
    degraded: Sequence[DegradedSegment] = (),
) -> None:
    kept = [stored(c) for c in upload.planned if c not in dropped]
    await store.commit_upload(
        upload.object_id,
        upload.size_bytes,
        "0" * 32,
        kept,
        replace=False,
        dropped=[ref(c) for c in dropped],
        degraded=degraded,
    )


async def put(
    store: MetadataStore, size_bytes: int, place: Placement = spread, key: str | None = None
) -> Upload:
    upload = await begin(store, size_bytes, place, key)
    await commit(store, upload)
    return upload


async def due(maintenance: MaintenanceStore) -> list[RepairTaskRef]:
    return await maintenance.due_repair_tasks(MANY)


async def queued_segments(maintenance: MaintenanceStore) -> set[tuple[str, int]]:
    return {(t.object_id, t.segment_index) for t in await due(maintenance)}


async def garbage(store: MetadataStore) -> set[ChunkRef]:
    return set(await store.list_garbage(MANY))


def node_info(node_id: str) -> NodeInfo:
    now = datetime.now(UTC)
    return NodeInfo(node_id, f"host-{node_id[-4:]}:7000", 10**9, 0, 10**9, 0, now, now)


# -- degraded commits ------------------------------------------------------------------------


async def test_a_degraded_commit_queues_its_segments_most_at_risk_first(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    size = 5 * STRIPE_BYTES  # segments of 2, 2 and 1 stripes
    upload = await begin(store, size)
    # Segment 0 lost one shard, segment 2 two: it is the more at risk.
    dropped = [upload.chunk(0, 5), upload.chunk(2, 4), upload.chunk(2, 5)]
    degraded = [
        DegradedSegment(0, stripes_in_segment(size, 0), SHARDS - 1 - NEEDED),
        DegradedSegment(2, stripes_in_segment(size, 2), SHARDS - 2 - NEEDED),
    ]
    await commit(store, upload, dropped, degraded)
    assert await due(maintenance) == [
        RepairTaskRef(upload.object_id, 2, SHARDS - 2 - NEEDED, 0),
        RepairTaskRef(upload.object_id, 0, SHARDS - 1 - NEEDED, 0),
    ]
    assert await maintenance.due_repair_tasks(1) == [
        RepairTaskRef(upload.object_id, 2, SHARDS - 2 - NEEDED, 0)
    ]
    backlog = await maintenance.repair_backlog([])
    assert (backlog.segments_queued, backlog.stripes_queued) == (2, 3)
    assert backlog.stripes_below_target == backlog.stripes_queued


async def test_a_degraded_commit_sends_dropped_chunks_to_garbage(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    upload = await begin(store, 3 * STRIPE_BYTES)
    dropped = [upload.chunk(0, 2), upload.chunk(1, 2)]
    await commit(store, upload, dropped, [DegradedSegment(0, 2, 1), DegradedSegment(1, 1, 1)])
    assert await garbage(store) == {ref(c) for c in dropped}
    for segment in (0, 1):
        layout = await maintenance.segment_layout(upload.object_id, segment)
        assert layout is not None
        assert [c.shard_index for c in layout.chunks] == [0, 1, 3, 4, 5]
    kept = {c.chunk_id for c in upload.planned if c not in dropped}
    everything = [c.chunk_id for c in upload.planned]
    assert await maintenance.known_chunks(everything) == kept
    full = await store.get_layout("default", upload.key)
    assert {c.chunk_id for c in full.chunks} == kept


async def test_an_ordinary_commit_queues_nothing(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    await put(store, 3 * STRIPE_BYTES)
    assert await due(maintenance) == []
    assert await garbage(store) == set()


# -- queueing the segments of lost and draining nodes ----------------------------------------


async def test_queue_segments_on_nodes_queues_each_committed_segment_once(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    lost = OTHER_NODE
    # Two chunks of segment 0 and one of segment 2 on the lost node; segment 1 elsewhere.
    hit = await put(store, 5 * STRIPE_BYTES, moved(lost, (0, 1), (0, 4), (2, 0)))
    await put(store, 5 * STRIPE_BYTES)  # nothing on the lost node
    pending = await begin(store, 5 * STRIPE_BYTES, moved(lost, (0, 0), (1, 0)))
    assert await maintenance.queue_segments_on_nodes([lost]) == 2
    assert await queued_segments(maintenance) == {(hit.object_id, 0), (hit.object_id, 2)}
    assert all(t.margin == 0 and t.attempts == 0 for t in await due(maintenance))
    # Idempotent: a segment already queued stays queued once.
    assert await maintenance.queue_segments_on_nodes([lost]) == 0
    assert len(await due(maintenance)) == 2
    assert await maintenance.queue_segments_on_nodes([]) == 0
    assert pending.object_id not in {t.object_id for t in await due(maintenance)}


async def test_queue_segments_on_nodes_takes_several_nodes(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    a = await put(store, 3 * STRIPE_BYTES, moved(OTHER_NODE, (1, 2)))
    b = await put(store, STRIPE_BYTES)
    assert await maintenance.queue_segments_on_nodes([OTHER_NODE, NODES[3]]) == 3
    assert await queued_segments(maintenance) == {
        (a.object_id, 0),
        (a.object_id, 1),
        (b.object_id, 0),
    }


# Sizes whose last segment is partial or full, with the last stripe partial or full.
SIZES = (
    1,
    STRIPE_BYTES,
    3 * STRIPE_BYTES,
    3 * STRIPE_BYTES + 1,
    4 * STRIPE_BYTES,
    4 * STRIPE_BYTES + 3000,
    5 * STRIPE_BYTES - 1,
)


async def test_queued_segments_count_their_own_stripes(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    """A segment counts min(segment_stripes, stripes left) stripes: the last may be short."""
    for size in SIZES:
        await put(store, size)
    assert await maintenance.queue_segments_on_nodes(list(NODES)) == sum(map(segments_of, SIZES))
    backlog = await maintenance.repair_backlog([])
    assert backlog.segments_queued == sum(map(segments_of, SIZES))
    assert backlog.stripes_queued == sum(map(stripes_of, SIZES))
    # Every segment is both queued and on an unavailable node: counted once.
    everywhere = await maintenance.repair_backlog(list(NODES))
    assert everywhere.stripes_below_target == sum(map(stripes_of, SIZES))


async def test_stripes_on_unavailable_nodes_count_per_segment(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    """Nothing queued: the backlog still sees the stripes with a shard on a node that is out."""
    for size in SIZES:
        await put(store, size)
    backlog = await maintenance.repair_backlog([NODES[0], NODES[1]])
    assert (backlog.segments_queued, backlog.stripes_queued) == (0, 0)
    assert backlog.stripes_below_target == sum(map(stripes_of, SIZES))


async def test_fewest_spare_shards_counts_missing_damaged_and_unavailable_shards(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    one_left = SHARDS - 1 - NEEDED
    whole = await put(store, 3 * STRIPE_BYTES)
    assert (await maintenance.repair_backlog([])).fewest_spare_shards is None
    # A node out: every segment has one shard there, so each can lose one more.
    assert (await maintenance.repair_backlog([NODES[0]])).fewest_spare_shards == one_left

    # A damaged chunk counts as lost; a node out that holds it costs nothing more.
    await maintenance.mark_chunks([whole.chunk(1, 2).chunk_id], ChunkState.DAMAGED)
    for out in ([], [NODES[2]]):
        assert (await maintenance.repair_backlog(out)).fewest_spare_shards == one_left
    assert (await maintenance.repair_backlog([NODES[3]])).fewest_spare_shards == 0

    # A degraded commit is short of one shard with every node up, and has nothing left to
    # lose once a node that holds one of its other shards is out.
    short = await begin(store, STRIPE_BYTES, key="short")
    await commit(store, short, [short.chunk(0, 5)], [DegradedSegment(0, 1, one_left)])
    assert (await maintenance.repair_backlog([])).fewest_spare_shards == one_left
    assert (await maintenance.repair_backlog([NODES[0]])).fewest_spare_shards == 0


async def test_fewest_spare_shards_counts_nodes_that_hold_two_shards_as_two_losses(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    """Written while a node was down: shards 0 and 5 both on NODES[0]. Every shard is there,
    but losing NODES[0] costs two of them, so the segment survives one more lost node, not
    two; with NODES[0] out it has none to spare."""
    doubled = await begin(store, STRIPE_BYTES, moved(NODES[0], (0, 5)), key="doubled")
    await commit(store, doubled, degraded=[DegradedSegment(0, 1, SHARDS - 1 - NEEDED)])
    assert (await maintenance.repair_backlog([])).fewest_spare_shards == 1
    assert (await maintenance.repair_backlog([NODES[0]])).fewest_spare_shards == 0
    assert (await maintenance.repair_backlog([NODES[1]])).fewest_spare_shards == 0
    assert (await maintenance.repair_backlog([NODES[0], NODES[1]])).fewest_spare_shards == -1


@pytest.mark.parametrize(
    ("shards_by_node", "survived"),
    [
        ({"a": {0}, "b": {1}, "c": {2}, "d": {3}, "e": {4}, "f": {5}}, 2),
        ({"a": {0, 5}, "b": {1}, "c": {2}, "d": {3}, "e": {4}}, 1),
        ({"a": {0, 4}, "b": {1, 5}, "c": {2}, "d": {3}}, 1),
        ({"a": {0, 4, 5}, "b": {1}, "c": {2}, "d": {3}}, 0),
        # A chunk being moved is on two nodes at once: losing one of them costs nothing.
        ({"a": {0}, "g": {0}, "b": {1}, "c": {2}, "d": {3}, "e": {4}, "f": {5}}, 2),
        ({"a": {0, 1}, "g": {0, 1}, "c": {2}, "d": {3}}, 0),
        ({"a": {0}, "b": {1}, "c": {2}}, -1),
        ({"a": set(), "b": {1}}, -3),
    ],
)
def test_node_losses_survived_takes_the_nodes_holding_most_first(
    shards_by_node: dict[str, set[int]], survived: int
) -> None:
    assert node_losses_survived(shards_by_node, NEEDED) == survived


async def test_chunks_placed_on_walks_one_nodes_sound_committed_chunks_in_id_order(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    first = await put(store, 5 * STRIPE_BYTES)  # three segments: three chunks on every node
    second = await put(store, STRIPE_BYTES)
    await begin(store, STRIPE_BYTES)  # pending: not placed yet
    mine = sorted(c.chunk_id for c in first.on_node(NODES[1]) + second.on_node(NODES[1]))
    await maintenance.mark_chunks([mine[2]], ChunkState.DAMAGED)
    sound = [c for c in mine if c != mine[2]]

    assert await maintenance.chunks_placed_on(NODES[1], "", None, MANY) == sound
    assert await maintenance.chunks_placed_on(NODES[1], "", None, 2) == sound[:2]
    assert await maintenance.chunks_placed_on(NODES[1], sound[0], sound[2], MANY) == sound[1:3]
    assert await maintenance.chunks_placed_on(NODES[1], sound[-1], None, MANY) == []
    assert await maintenance.chunks_placed_on(OTHER_NODE, "", None, MANY) == []


# -- chunk states ----------------------------------------------------------------------------


async def test_mark_chunks_damaged_marks_and_queues_once(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    size = 3 * STRIPE_BYTES  # segments of 2 and 1 stripes
    upload = await put(store, size)
    bad = [upload.chunk(0, 1).chunk_id, upload.chunk(1, 3).chunk_id, upload.chunk(1, 4).chunk_id]
    assert await maintenance.mark_chunks(bad, ChunkState.DAMAGED) == len(bad)
    assert await queued_segments(maintenance) == {(upload.object_id, 0), (upload.object_id, 1)}
    backlog = await maintenance.repair_backlog([])
    assert backlog.stripes_queued == stripes_of(size)
    states = {}
    for segment in (0, 1):
        layout = await maintenance.segment_layout(upload.object_id, segment)
        assert layout is not None
        states.update({c.chunk_id: c.state for c in layout.chunks})
    assert {chunk for chunk, state in states.items() if state == ChunkState.DAMAGED} == set(bad)
    # Already damaged: nothing changes.
    assert await maintenance.mark_chunks(bad, ChunkState.DAMAGED) == 0
    assert await maintenance.mark_chunks([], ChunkState.DAMAGED) == 0
    assert await maintenance.mark_chunks([new_id()], ChunkState.DAMAGED) == 0


async def test_move_never_overrides_damaged(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    upload = await put(store, STRIPE_BYTES)
    damaged, sound = upload.chunk(0, 0).chunk_id, upload.chunk(0, 1).chunk_id
    assert await maintenance.mark_chunks([damaged], ChunkState.DAMAGED) == 1
    assert await maintenance.mark_chunks([damaged, sound], ChunkState.MOVE) == 1
    assert await maintenance.mark_chunks([sound], ChunkState.MOVE) == 0  # already to move
    # A chunk to move may still turn out damaged.
    assert await maintenance.mark_chunks([sound], ChunkState.DAMAGED) == 1
    layout = await maintenance.segment_layout(upload.object_id, 0)
    assert layout is not None
    states = {c.chunk_id: c.state for c in layout.chunks}
    assert states[damaged] == states[sound] == ChunkState.DAMAGED
    assert sorted(states.values()).count(ChunkState.OK) == SHARDS - 2


async def test_mark_chunks_leaves_pending_uploads_alone(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    pending = await begin(store, STRIPE_BYTES)
    assert await maintenance.mark_chunks([pending.chunk(0, 0).chunk_id], ChunkState.DAMAGED) == 0
    assert await due(maintenance) == []


async def test_segment_layout_shows_every_chunk_with_its_state(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    size = 3 * STRIPE_BYTES
    upload = await put(store, size)
    await maintenance.mark_chunks([upload.chunk(1, 2).chunk_id], ChunkState.MOVE)
    layout = await maintenance.segment_layout(upload.object_id, 1)
    assert layout is not None
    assert layout.segment_index == 1
    assert layout.info.object_id == upload.object_id
    assert layout.info.size_bytes == size
    assert layout.info.policy == POLICY
    expected = [
        dataclasses.replace(stored(upload.chunk(1, shard)), state=state)
        for shard, state in enumerate(
            [ChunkState.OK, ChunkState.OK, ChunkState.MOVE] + [ChunkState.OK] * 3
        )
    ]
    assert list(layout.chunks) == expected
    beyond = await maintenance.segment_layout(upload.object_id, segments_of(size))
    assert beyond is not None and beyond.chunks == ()


async def test_segment_layout_is_none_for_pending_and_deleted_objects(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    pending = await begin(store, STRIPE_BYTES)
    assert await maintenance.segment_layout(pending.object_id, 0) is None
    deleted = await put(store, STRIPE_BYTES)
    await store.delete_object("default", deleted.key)
    assert await maintenance.segment_layout(deleted.object_id, 0) is None
    assert await maintenance.segment_layout(new_id(), 0) is None


# -- replacing chunks ------------------------------------------------------------------------


def rebuilt(old: PlannedChunk, node_id: str) -> StoredChunk:
    return StoredChunk(new_id(), node_id, old.segment_index, old.shard_index, 4321, (1, 2, 3))


async def chunks_of_segment(
    maintenance: MaintenanceStore, object_id: str, segment: int
) -> tuple[StoredChunk, ...]:
    layout = await maintenance.segment_layout(object_id, segment)
    assert layout is not None
    return layout.chunks


async def test_replace_chunks_swaps_rows_and_retires_the_old_ones_as_garbage(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    upload = await put(store, 3 * STRIPE_BYTES)
    old = [upload.chunk(1, 0), upload.chunk(1, 5)]
    await maintenance.mark_chunks([old[0].chunk_id], ChunkState.DAMAGED)
    new = [rebuilt(c, OTHER_NODE) for c in old]
    assert await maintenance.replace_chunks(upload.object_id, [ref(c) for c in old], new)
    chunks = await chunks_of_segment(maintenance, upload.object_id, 1)
    assert {c.shard_index: c for c in chunks}[0] == new[0]  # state back to ok, crcs stored
    assert {c.shard_index: c for c in chunks}[5] == new[1]
    assert len(chunks) == SHARDS
    assert await garbage(store) == {ref(c) for c in old}
    assert await maintenance.known_chunks([c.chunk_id for c in old]) == set()
    # The other segment is untouched.
    untouched = await chunks_of_segment(maintenance, upload.object_id, 0)
    assert untouched == tuple(stored(upload.chunk(0, shard)) for shard in range(SHARDS))


async def test_replace_chunks_fills_missing_rows_retiring_nothing(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    upload = await begin(store, STRIPE_BYTES)
    missing = upload.chunk(0, 5)
    await commit(store, upload, [missing], [DegradedSegment(0, 1, SHARDS - 1 - NEEDED)])
    new = rebuilt(missing, OTHER_NODE)
    assert await maintenance.replace_chunks(upload.object_id, [], [new])
    chunks = await chunks_of_segment(maintenance, upload.object_id, 0)
    assert [c.shard_index for c in chunks] == list(range(SHARDS))
    assert chunks[5] == new
    assert await garbage(store) == {ref(missing)}  # only what the commit dropped


async def test_replace_chunks_refuses_a_retired_chunk_that_is_no_longer_the_objects(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    upload = await put(store, STRIPE_BYTES)
    other = await put(store, STRIPE_BYTES)
    first, second = upload.chunk(0, 0), upload.chunk(0, 1)
    assert await maintenance.replace_chunks(
        upload.object_id, [ref(first)], [rebuilt(first, OTHER_NODE)]
    )
    before_chunks = await chunks_of_segment(maintenance, upload.object_id, 0)
    before_garbage = await garbage(store)
    # Retiring ``first`` again (another repair got there first), together with a sound one.
    late = [rebuilt(first, NODES[2]), rebuilt(second, NODES[3])]
    assert not await maintenance.replace_chunks(upload.object_id, [ref(first), ref(second)], late)
    # A chunk of another object.
    foreign = other.chunk(0, 1)
    assert not await maintenance.replace_chunks(
        upload.object_id, [ref(foreign)], [rebuilt(foreign, NODES[3])]
    )
    assert await chunks_of_segment(maintenance, upload.object_id, 0) == before_chunks
    assert await chunks_of_segment(maintenance, other.object_id, 0) == tuple(
        stored(other.chunk(0, shard)) for shard in range(SHARDS)
    )
    assert await garbage(store) == before_garbage
    assert await maintenance.known_chunks([c.chunk_id for c in late]) == set()


async def test_replace_chunks_refuses_a_shard_filled_meanwhile(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    """Two repairs of one missing shard (two gateways, say): the second must not succeed.

    Nothing is retired, so only the unique (object, segment, shard) row can catch it. Either
    answer of the contract is fine, False or one of our errors; a success or a foreign
    exception is not.
    """
    upload = await begin(store, STRIPE_BYTES)
    missing = upload.chunk(0, 5)
    await commit(store, upload, [missing], [DegradedSegment(0, 1, SHARDS - 1 - NEEDED)])
    first, second = rebuilt(missing, OTHER_NODE), rebuilt(missing, NODES[0])
    assert await maintenance.replace_chunks(upload.object_id, [], [first])
    try:
        outcome = await maintenance.replace_chunks(upload.object_id, [], [second])
    except DiststorageError:
        outcome = False
    assert outcome is False
    chunks = await chunks_of_segment(maintenance, upload.object_id, 0)
    assert chunks[5] == first
    assert await maintenance.known_chunks([second.chunk_id]) == set()
    # The store still works.
    await store.record_node(node_info(OTHER_NODE))
    assert await maintenance.set_node_lifecycle(OTHER_NODE, NodeLifecycle.DRAINING)


async def test_replace_chunks_refuses_a_deleted_or_pending_object(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    upload = await put(store, STRIPE_BYTES)
    await store.delete_object("default", upload.key)
    garbage_after_delete = await garbage(store)
    old = upload.chunk(0, 0)
    new = rebuilt(old, OTHER_NODE)
    assert not await maintenance.replace_chunks(upload.object_id, [ref(old)], [new])
    pending = await begin(store, STRIPE_BYTES)
    pending_new = rebuilt(pending.chunk(0, 0), OTHER_NODE)
    assert not await maintenance.replace_chunks(
        pending.object_id, [ref(pending.chunk(0, 0))], [pending_new]
    )
    assert await maintenance.known_chunks([new.chunk_id, pending_new.chunk_id]) == set()
    assert await maintenance.known_chunks([pending.chunk(0, 0).chunk_id]) == {
        pending.chunk(0, 0).chunk_id
    }
    assert await garbage(store) == garbage_after_delete


# -- the repair queue ------------------------------------------------------------------------


async def test_finish_repair_task_removes_only_that_segment(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    upload = await put(store, 3 * STRIPE_BYTES)
    await maintenance.mark_chunks(
        [upload.chunk(0, 0).chunk_id, upload.chunk(1, 0).chunk_id], ChunkState.MOVE
    )
    await maintenance.finish_repair_task(upload.object_id, 0)
    assert await queued_segments(maintenance) == {(upload.object_id, 1)}
    await maintenance.finish_repair_task(upload.object_id, 0)  # already gone: harmless
    await maintenance.finish_repair_task(upload.object_id, 1)
    assert await due(maintenance) == []
    assert (await maintenance.repair_backlog([])).segments_queued == 0


async def test_a_deferred_task_is_not_due_until_its_time(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    a = await put(store, STRIPE_BYTES)
    b = await put(store, STRIPE_BYTES)
    await maintenance.mark_chunks([a.chunk(0, 0).chunk_id, b.chunk(0, 0).chunk_id], ChunkState.MOVE)
    await maintenance.defer_repair_task(a.object_id, 0, margin=-1, delay_s=LONG_S)
    assert await queued_segments(maintenance) == {(b.object_id, 0)}
    # Still queued, and still counted in the backlog.
    assert (await maintenance.repair_backlog([])).segments_queued == 2


async def test_deferring_re_ranks_the_task_and_counts_the_attempt(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    a = await put(store, STRIPE_BYTES)
    b = await put(store, STRIPE_BYTES)
    await maintenance.mark_chunks([a.chunk(0, 0).chunk_id], ChunkState.MOVE)
    await maintenance.mark_chunks([b.chunk(0, 0).chunk_id], ChunkState.MOVE)
    assert [t.object_id for t in await due(maintenance)] == [a.object_id, b.object_id]
    await maintenance.defer_repair_task(a.object_id, 0, margin=2, delay_s=0.0)
    await maintenance.defer_repair_task(b.object_id, 0, margin=1, delay_s=0.0)
    await maintenance.defer_repair_task(b.object_id, 0, margin=1, delay_s=0.0)
    assert await due(maintenance) == [
        RepairTaskRef(b.object_id, 0, 1, 2),
        RepairTaskRef(a.object_id, 0, 2, 1),
    ]


async def test_repair_backlog_counts_a_segment_once_when_queued_and_unavailable(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    out = OTHER_NODE
    # Three stripes: a full segment of two and a last one of one.
    both = await put(store, 3 * STRIPE_BYTES, moved(out, (0, 0), (0, 3), (1, 0)))
    only_out = await put(store, 4 * STRIPE_BYTES, moved(out, (1, 2)))
    only_queued = await put(store, 2 * STRIPE_BYTES)
    untouched = await put(store, 4 * STRIPE_BYTES)
    await maintenance.mark_chunks(
        [both.chunk(0, 1).chunk_id, both.chunk(1, 1).chunk_id, only_queued.chunk(0, 1).chunk_id],
        ChunkState.DAMAGED,
    )
    queued = stripes_of(both.size_bytes) + stripes_of(only_queued.size_bytes)
    backlog = await maintenance.repair_backlog([out])
    assert backlog.segments_queued == 3
    assert backlog.stripes_queued == queued
    assert backlog.stripes_below_target == queued + stripes_in_segment(only_out.size_bytes, 1)
    # A node holding a chunk of every segment puts every stripe below target.
    everything = await maintenance.repair_backlog([NODES[4]])
    assert everything.stripes_below_target == sum(
        stripes_of(u.size_bytes) for u in (both, only_out, only_queued, untouched)
    )
    assert (await maintenance.repair_backlog([])).stripes_below_target == queued


# -- nodes -----------------------------------------------------------------------------------


async def test_set_node_lifecycle_only_for_known_nodes(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    await store.record_node(node_info(NODES[0]))
    await store.record_node(node_info(NODES[1]))
    assert await maintenance.set_node_lifecycle(NODES[0], NodeLifecycle.DRAINING)
    assert not await maintenance.set_node_lifecycle(OTHER_NODE, NodeLifecycle.DRAINING)
    lifecycles = {n.node_id: n.lifecycle for n in await store.list_nodes()}
    assert lifecycles == {NODES[0]: NodeLifecycle.DRAINING, NODES[1]: NodeLifecycle.ACTIVE}
    # A heartbeat recorded later keeps the operator's choice.
    await store.record_node(node_info(NODES[0]))
    assert {n.node_id: n.lifecycle for n in await store.list_nodes()}[
        NODES[0]
    ] == NodeLifecycle.DRAINING
    assert await maintenance.set_node_lifecycle(NODES[0], NodeLifecycle.ACTIVE)
    assert {n.lifecycle for n in await store.list_nodes()} == {NodeLifecycle.ACTIVE}


async def test_forget_node_drops_it_and_its_garbage(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    for node in NODES[:2]:
        await store.record_node(node_info(node))
    upload = await put(store, STRIPE_BYTES)
    await store.delete_object("default", upload.key)
    await maintenance.forget_node(NODES[0])
    assert [n.node_id for n in await store.list_nodes()] == [NODES[1]]
    assert await garbage(store) == {ref(c) for c in upload.planned if c.node_id != NODES[0]}
    await maintenance.forget_node(OTHER_NODE)  # a stranger: harmless
    assert len(await store.list_nodes()) == 1


async def test_chunks_by_node_counts_chunks_and_bytes(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    size = 3 * STRIPE_BYTES
    await put(store, size)
    await put(store, size, moved(OTHER_NODE, (0, 0), (1, 0)))
    counts = await maintenance.chunks_by_node()
    segments = segments_of(size)
    per_shard = {
        shard: sum(chunk_bytes(segment, shard) for segment in range(segments))
        for shard in range(SHARDS)
    }
    assert counts[NODES[0]] == (segments, per_shard[0])
    assert counts[OTHER_NODE] == (segments, per_shard[0])
    for shard in range(1, SHARDS):
        assert counts[NODES[shard]] == (2 * segments, 2 * per_shard[shard])
    assert set(counts) == {*NODES, OTHER_NODE}


async def test_movable_chunks_are_sound_committed_chunks_biggest_first(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    node = NODES[2]
    upload = await put(store, 5 * STRIPE_BYTES)  # three chunks on the node, one per segment
    await begin(store, 5 * STRIPE_BYTES)  # pending: not movable
    on_node = upload.on_node(node)
    assert len(on_node) == segments_of(upload.size_bytes)
    await maintenance.mark_chunks([upload.chunk(1, 2).chunk_id], ChunkState.DAMAGED)
    sound = [stored(c) for c in on_node if c.segment_index != 1]
    expected = sorted(((c.chunk_id, c.size_bytes) for c in sound), key=lambda p: -p[1])
    assert await maintenance.movable_chunks(node, MANY) == expected
    assert await maintenance.movable_chunks(node, 1) == expected[:1]
    assert await maintenance.movable_chunks(OTHER_NODE, MANY) == []


# -- garbage collection ----------------------------------------------------------------------


def moment(offset_s: float = 0.0) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=offset_s)


async def test_stale_uploads_are_the_pending_ones_left_untouched(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    left = await begin(store, STRIPE_BYTES)
    running = await begin(store, STRIPE_BYTES)
    await put(store, STRIPE_BYTES)  # committed: never stale
    assert await maintenance.stale_uploads(moment(-LONG_S), MANY) == []
    between = moment()
    await maintenance.touch_uploads([running.object_id])
    stale = await maintenance.stale_uploads(between, MANY)
    assert [s.object_id for s in stale] == [left.object_id]
    later = await maintenance.stale_uploads(moment(LONG_S), MANY)
    assert {s.object_id for s in later} == {left.object_id, running.object_id}
    assert len(await maintenance.stale_uploads(moment(LONG_S), 1)) == 1
    await maintenance.touch_uploads([])  # nothing to do


async def test_collect_upload_queues_the_chunks_of_a_stale_upload_as_garbage(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    upload = await begin(store, 3 * STRIPE_BYTES)
    collected = await maintenance.collect_upload(upload.object_id, moment(LONG_S))
    assert set(collected) == {ref(c) for c in upload.planned}
    assert len(collected) == len(upload.planned)
    assert await garbage(store) == set(collected)
    assert await store.upload_state(upload.object_id) is None
    assert await maintenance.known_chunks([c.chunk_id for c in upload.planned]) == set()
    assert await maintenance.collect_upload(upload.object_id, moment(LONG_S)) == []


async def test_collect_upload_spares_touched_and_committed_uploads(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    running = await begin(store, STRIPE_BYTES)
    committed = await put(store, STRIPE_BYTES)
    between = moment()
    await maintenance.touch_uploads([running.object_id, committed.object_id])
    assert await maintenance.collect_upload(running.object_id, between) == []
    assert await store.upload_state(running.object_id) == "pending"
    # However old, a committed object is never collected.
    assert await maintenance.collect_upload(committed.object_id, moment(LONG_S)) == []
    assert await store.upload_state(committed.object_id) == "committed"
    assert await garbage(store) == set()
    everything = [c.chunk_id for c in (*running.planned, *committed.planned)]
    assert await maintenance.known_chunks(everything) == set(everything)


async def test_known_chunks_are_those_some_object_references(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    pending = await begin(store, STRIPE_BYTES)
    committed = await put(store, STRIPE_BYTES)
    deleted = await put(store, STRIPE_BYTES)
    await store.delete_object("default", deleted.key)
    asked = [pending.chunk(0, 0), committed.chunk(0, 1), deleted.chunk(0, 2)]
    assert await maintenance.known_chunks([c.chunk_id for c in asked] + [new_id()]) == {
        pending.chunk(0, 0).chunk_id,
        committed.chunk(0, 1).chunk_id,
    }
    assert await maintenance.known_chunks([]) == set()


async def test_deleting_an_object_removes_its_repair_tasks(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    doomed = await put(store, 3 * STRIPE_BYTES, key="doomed")
    kept = await put(store, STRIPE_BYTES)
    await maintenance.mark_chunks(
        [doomed.chunk(0, 0).chunk_id, doomed.chunk(1, 0).chunk_id, kept.chunk(0, 0).chunk_id],
        ChunkState.DAMAGED,
    )
    await store.delete_object("default", "doomed")
    assert await queued_segments(maintenance) == {(kept.object_id, 0)}
    backlog = await maintenance.repair_backlog([])
    assert (backlog.segments_queued, backlog.stripes_queued) == (1, stripes_of(kept.size_bytes))


async def test_replacing_an_object_removes_the_old_versions_repair_tasks(
    store: MetadataStore, maintenance: MaintenanceStore
) -> None:
    old = await put(store, STRIPE_BYTES, key="k")
    await maintenance.mark_chunks([old.chunk(0, 0).chunk_id], ChunkState.DAMAGED)
    new = await begin(store, STRIPE_BYTES, key="k")
    await store.commit_upload(
        new.object_id, new.size_bytes, "1" * 32, [stored(c) for c in new.planned], replace=True
    )
    assert await due(maintenance) == []
