"""The repair plan of one segment: which shards to rebuild, which rows they retire, which chunks
may be read meanwhile. Pure, so every case is a table of chunks and node healths."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import pytest

from diststorage.gateway.workers.repair_plan import NodeHealth, SegmentPlan, plan_segment
from diststorage.meta import ChunkState, StoredChunk

# ec:4+2: six shards, any four of them read the segment.
TOTAL = 6
NEEDED = 4
NODES = tuple(f"node-{n}" for n in range(TOTAL))


def chunk(shard: int, node: str, state: str = ChunkState.OK, segment: int = 0) -> StoredChunk:
    return StoredChunk(f"chunk-{segment}-{shard}-{node}", node, segment, shard, 1024, (7,), state)


def full_segment(states: Mapping[int, str] | None = None) -> list[StoredChunk]:
    """Shard ``i`` on ``NODES[i]``, sound unless ``states`` says otherwise."""
    states = states or {}
    return [chunk(shard, NODES[shard], states.get(shard, ChunkState.OK)) for shard in range(TOTAL)]


def health_of(**unusual: NodeHealth) -> Callable[[str], NodeHealth]:
    """Every node healthy except those named (by index: ``n3=NodeHealth.LOST``)."""
    by_node = {NODES[int(name[1:])]: state for name, state in unusual.items()}
    return lambda node_id: by_node.get(node_id, NodeHealth.HEALTHY)


def plan(
    chunks: Sequence[StoredChunk], health: Callable[[str], NodeHealth] | None = None
) -> SegmentPlan:
    return plan_segment(chunks, TOTAL, NEEDED, health or health_of())


def test_a_healthy_full_segment_is_complete() -> None:
    chunks = full_segment()
    result = plan(chunks)
    assert result.complete
    assert result.rebuild == ()
    assert result.retire == ()
    assert result.sources == {c.shard_index: c for c in chunks}
    assert result.keep_nodes == frozenset(NODES[:TOTAL])
    assert result.waiting == 0
    assert result.margin == TOTAL - NEEDED


def test_a_shard_on_a_lost_node_is_rebuilt_and_its_row_retired() -> None:
    chunks = full_segment()
    result = plan(chunks, health_of(n2=NodeHealth.LOST))
    assert not result.complete
    assert result.rebuild == (2,)
    assert result.retire == (chunks[2],)
    assert 2 not in result.sources  # a lost node cannot be read
    assert NODES[2] not in result.keep_nodes
    assert result.waiting == 0
    assert result.margin == TOTAL - 1 - NEEDED


def test_a_shard_on_a_waiting_node_is_kept_but_neither_read_nor_counted_safe() -> None:
    chunks = full_segment()
    result = plan(chunks, health_of(n4=NodeHealth.WAITING))
    assert result.complete  # not rebuilt within the grace period
    assert result.retire == ()
    assert result.waiting == 1
    assert 4 not in result.sources
    # Its node still holds the shard: a rebuilt shard must not be placed there.
    assert NODES[4] in result.keep_nodes
    # A shard that may never come back gives no safety.
    assert result.margin == TOTAL - 1 - NEEDED


def test_a_shard_on_a_leaving_node_is_rebuilt_and_read_meanwhile() -> None:
    chunks = full_segment()
    result = plan(chunks, health_of(n0=NodeHealth.LEAVING))
    assert result.rebuild == (0,)
    assert result.retire == (chunks[0],)
    assert result.sources[0] == chunks[0]
    assert NODES[0] not in result.keep_nodes
    assert result.waiting == 0
    assert result.margin == TOTAL - 1 - NEEDED


@pytest.mark.parametrize("state", [ChunkState.DAMAGED, ChunkState.MOVE])
def test_a_damaged_or_moving_chunk_is_rebuilt_and_still_a_source(state: str) -> None:
    chunks = full_segment({3: state})
    result = plan(chunks)
    assert result.rebuild == (3,)
    assert result.retire == (chunks[3],)
    # A damaged chunk is a source of last resort; one to move is sound.
    assert result.sources[3] == chunks[3]
    assert NODES[3] not in result.keep_nodes
    assert result.margin == TOTAL - 1 - NEEDED


def test_a_damaged_chunk_on_a_lost_node_is_no_source() -> None:
    chunks = full_segment({3: ChunkState.DAMAGED})
    result = plan(chunks, health_of(n3=NodeHealth.LOST))
    assert result.rebuild == (3,)
    assert result.retire == (chunks[3],)
    assert 3 not in result.sources


def test_a_damaged_chunk_on_a_waiting_node_is_rebuilt_at_once() -> None:
    """Waiting for its node is pointless: the chunk is unusable when the node comes back."""
    chunks = full_segment({5: ChunkState.DAMAGED})
    result = plan(chunks, health_of(n5=NodeHealth.WAITING))
    assert result.rebuild == (5,)
    assert result.retire == (chunks[5],)
    assert result.waiting == 0
    assert 5 not in result.sources


def test_two_shards_on_one_node_keep_one_and_rebuild_the_other() -> None:
    chunks = full_segment()
    doubled = chunk(4, NODES[1])  # shard 4 placed on the node that holds shard 1
    chunks[4] = doubled
    result = plan(chunks)
    assert len(result.rebuild) == 1
    rebuilt = result.rebuild[0]
    assert rebuilt in (1, 4)
    assert result.retire == (chunks[rebuilt],)
    # The node keeps one shard, so a rebuilt one must go elsewhere; both are readable.
    assert NODES[1] in result.keep_nodes
    assert result.sources[1] == chunks[1]
    assert result.sources[4] == doubled
    assert result.margin == TOTAL - 1 - NEEDED


def test_two_shards_on_one_waiting_node_count_once() -> None:
    chunks = full_segment()
    chunks[4] = chunk(4, NODES[1])
    result = plan(chunks, health_of(n1=NodeHealth.WAITING))
    assert result.waiting == 1
    assert len(result.rebuild) == 1
    assert result.retire == (chunks[result.rebuild[0]],)


def test_missing_rows_of_a_degraded_write_are_rebuilt_with_nothing_retired() -> None:
    chunks = full_segment()[:NEEDED]  # the write gave up on the last two shards
    result = plan(chunks)
    assert result.rebuild == tuple(range(NEEDED, TOTAL))
    assert result.retire == ()
    assert set(result.sources) == set(range(NEEDED))
    assert result.margin == 0


def test_the_plan_does_not_depend_on_row_order() -> None:
    chunks = full_segment({0: ChunkState.DAMAGED})
    health = health_of(n2=NodeHealth.LOST, n3=NodeHealth.WAITING)
    forward = plan(chunks, health)
    backward = plan(list(reversed(chunks)), health)
    assert forward.rebuild == backward.rebuild == (0, 2)
    assert set(forward.retire) == set(backward.retire) == {chunks[0], chunks[2]}
    assert forward.sources == backward.sources
    assert forward.keep_nodes == backward.keep_nodes
    assert (forward.waiting, forward.margin) == (backward.waiting, backward.margin)


@pytest.mark.parametrize("lost", range(TOTAL + 1))
def test_margin_falls_by_one_per_lost_shard(lost: int) -> None:
    chunks = full_segment()
    health = health_of(**{f"n{shard}": NodeHealth.LOST for shard in range(lost)})
    result = plan(chunks, health)
    assert result.margin == TOTAL - lost - NEEDED
    assert result.rebuild == tuple(range(lost))
    assert len(result.sources) == TOTAL - lost
    # Below zero the segment cannot be read: fewer sources than shards needed.
    assert (len(result.sources) >= NEEDED) == (result.margin >= 0)


def test_every_kind_of_trouble_at_once() -> None:
    chunks = full_segment({1: ChunkState.MOVE})
    chunks[5] = chunk(5, NODES[4])  # shards 4 and 5 share a node
    health = health_of(n0=NodeHealth.LOST, n2=NodeHealth.WAITING, n3=NodeHealth.LEAVING)
    result = plan(chunks, health)
    # 0: lost; 1: to move; 3: leaving; 5: shares its node with 4. 2 waits.
    assert result.rebuild == (0, 1, 3, 5)
    assert set(result.retire) == {chunks[0], chunks[1], chunks[3], chunks[5]}
    assert set(result.sources) == {1, 3, 4, 5}
    assert result.keep_nodes == {NODES[2], NODES[4]}
    assert result.waiting == 1
    assert result.margin == 1 - NEEDED  # only shard 4 is sound, healthy and alone
