"""A page of one object's segments and their chunks (PlacementStore.segment_page), on SQLite
and PostgreSQL: pages that cover the object exactly once, segments counted from the object's
geometry (a segment whose chunks are all gone still shows), chunk states as recorded, inline
objects, and missing keys and buckets. Objects of several segments in a few kilobytes: small
stripes, two per segment, as in the maintenance suite. Multipart objects are covered on a real
cluster (tests/integration/test_object_layout.py).
"""

from __future__ import annotations

import pytest

from diststorage.core.errors import ObjectNotFound
from diststorage.core.ids import new_id
from diststorage.meta import (
    MAX_SEGMENTS_PER_PAGE,
    ChunkRef,
    ChunkState,
    MetadataStore,
    NewObject,
    PlacedSegment,
    PlannedChunk,
    StoredChunk,
)
from diststorage.meta.placement import Piece, segment_window

POLICY = "ec:4+2"
SHARDS = 6
STRIPE_BYTES = 4096
SEGMENT_STRIPES = 2
SEGMENT_BYTES = STRIPE_BYTES * SEGMENT_STRIPES
NODES = tuple(f"{n:032x}" for n in range(1, SHARDS + 1))


async def put(
    store: MetadataStore, key: str, size_bytes: int, drop: frozenset[tuple[int, int]] = frozenset()
) -> dict[tuple[int, int], str]:
    """An ec:4+2 object, shard ``i`` of every segment on NODES[i], without the (segment,
    shard) chunks in ``drop``; answers (segment, shard) → chunk id of those it has."""
    new = NewObject(
        new_id(), "default", key, "text/plain", POLICY, STRIPE_BYTES, SEGMENT_STRIPES, new_id()
    )
    segments = -(-size_bytes // SEGMENT_BYTES)
    planned = [
        PlannedChunk(new_id(), NODES[shard], segment, shard)
        for segment in range(segments)
        for shard in range(SHARDS)
    ]
    await store.begin_upload(new, planned)
    kept = [c for c in planned if (c.segment_index, c.shard_index) not in drop]
    await store.commit_upload(
        new.object_id,
        size_bytes,
        "0" * 32,
        [
            StoredChunk(
                c.chunk_id, c.node_id, c.segment_index, c.shard_index, 100 + c.shard_index, (1,)
            )
            for c in kept
        ],
        replace=False,
        dropped=[ChunkRef(c.chunk_id, c.node_id) for c in planned if c not in kept],
    )
    return {(c.segment_index, c.shard_index): c.chunk_id for c in kept}


async def test_pages_cover_every_segment_once_with_its_geometry(store: MetadataStore) -> None:
    size = 5 * SEGMENT_BYTES + STRIPE_BYTES // 2  # five whole segments and half a stripe
    chunks = await put(store, "big", size)
    seen: list[PlacedSegment] = []
    start: int | None = 0
    while start is not None:
        page = await store.placement.segment_page("default", "big", start, 2)
        assert page.segment_count == 6
        assert page.start == start
        assert 1 <= len(page.segments) <= 2
        seen.extend(page.segments)
        start = page.next_start
    assert [s.segment_index for s in seen] == list(range(6))
    assert [s.offset_bytes for s in seen] == [i * SEGMENT_BYTES for i in range(6)]
    assert sum(s.size_bytes for s in seen) == size
    assert [s.stripe_count for s in seen] == [2, 2, 2, 2, 2, 1]
    for segment in seen:
        assert segment.part_index is None
        assert segment.policy == POLICY
        assert [(c.shard_index, c.node_id) for c in segment.chunks] == list(enumerate(NODES))
        assert {c.chunk_id for c in segment.chunks} == {
            chunks[(segment.segment_index, shard)] for shard in range(SHARDS)
        }
        assert {c.state for c in segment.chunks} == {ChunkState.OK}
        assert [c.size_bytes for c in segment.chunks] == [100 + i for i in range(SHARDS)]


async def test_a_page_past_the_end_is_empty_and_last(store: MetadataStore) -> None:
    await put(store, "small", 100)
    page = await store.placement.segment_page("default", "small", 5, 10)
    assert (page.segment_count, page.segments, page.next_start) == (1, (), None)
    whole = await store.placement.segment_page("default", "small", 0, 10**6)
    assert len(whole.segments) == 1
    assert whole.next_start is None


async def test_the_limit_is_clamped(store: MetadataStore) -> None:
    await put(store, "clamped", SEGMENT_BYTES * 3)
    page = await store.placement.segment_page("default", "clamped", -4, 0)
    assert (page.start, len(page.segments), page.next_start) == (0, 1, 1)
    assert MAX_SEGMENTS_PER_PAGE >= 100


async def test_missing_and_damaged_chunks_show_as_recorded(store: MetadataStore) -> None:
    # Segment 1 lost shard 2; segment 2 lost every shard.
    gone = frozenset({(1, 2)} | {(2, shard) for shard in range(SHARDS)})
    chunks = await put(store, "hurt", 3 * SEGMENT_BYTES, gone)
    assert await store.maintenance.mark_chunks([chunks[(0, 4)]], ChunkState.DAMAGED) == 1
    page = await store.placement.segment_page("default", "hurt", 0, 10)
    first, second, third = page.segments
    assert {c.shard_index: c.state for c in first.chunks}[4] == ChunkState.DAMAGED
    assert sum(c.state == ChunkState.OK for c in first.chunks) == SHARDS - 1
    assert [c.shard_index for c in second.chunks] == [0, 1, 3, 4, 5]
    assert (third.segment_index, third.chunks) == (2, ())


async def test_an_inline_object_has_no_segment(store: MetadataStore) -> None:
    new = NewObject(new_id(), "default", "tiny", "text/plain", "inline", STRIPE_BYTES, 1, new_id())
    await store.commit_inline(new, b"hello", "5d41402abc4b2a76b9719d911017c592", replace=False)
    page = await store.placement.segment_page("default", "tiny", 0, 10)
    assert page.inline
    assert (page.info.size_bytes, page.info.policy) == (5, "inline")
    assert (page.segment_count, page.segments, page.next_start) == (0, (), None)


async def test_keys_are_data(store: MetadataStore) -> None:
    key = "<script>/../%41 ☃/layout"
    await put(store, key, 10)
    page = await store.placement.segment_page("default", key, 0, 1)
    assert page.info.key == key
    assert not page.inline


async def test_unknown_keys_and_buckets_are_not_found(store: MetadataStore) -> None:
    await put(store, "here", 10)
    with pytest.raises(ObjectNotFound, match="no object under key 'there'"):
        await store.placement.segment_page("default", "there", 0, 1)
    with pytest.raises(ObjectNotFound, match="in bucket 'nowhere'"):
        await store.placement.segment_page("nowhere", "here", 0, 1)


def piece(part: int | None, size: int, inline: bool = False) -> Piece:
    return Piece(new_id(), part, 0, size, POLICY, STRIPE_BYTES, SEGMENT_STRIPES, inline)


def test_a_window_runs_across_parts_in_order() -> None:
    # Parts of 3, 0 (inline), 1 and 4 segments: positions 0-2, 3, 4-7.
    parts = [
        piece(0, 3 * SEGMENT_BYTES),
        piece(1, 10, inline=True),
        piece(2, 1),
        piece(3, 4 * SEGMENT_BYTES),
    ]
    window = segment_window(parts, 2, 4)
    assert [(w.piece.part_index, w.first, w.end) for w in window] == [
        (0, 2, 3),
        (2, 0, 1),
        (3, 0, 2),
    ]
    assert segment_window(parts, 8, 5) == []
    assert [(w.piece.part_index, w.first, w.end) for w in segment_window(parts, 7, 5)] == [
        (3, 3, 4)
    ]


def test_empty_and_inline_pieces_have_no_segment() -> None:
    assert piece(None, 0).segment_count == 0
    assert piece(None, 10, inline=True).segment_count == 0
    assert piece(None, SEGMENT_BYTES).segment_count == 1
    assert piece(None, SEGMENT_BYTES + 1).segment_count == 2
    assert piece(None, SEGMENT_BYTES + 1).segment_span(1) == (SEGMENT_BYTES, 1)
    assert piece(None, SEGMENT_BYTES + 1).stripe_count(1) == 1
