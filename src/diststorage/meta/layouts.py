"""Where a committed object's bytes are: the statements that read a layout and what they make
of the rows.

An object's row, chunks and inline body come in one statement, so one snapshot (a replace
committed in between cannot leave the object without its chunks). An object completed from
parts has none of those: its parts' rows, chunks and inline bodies come in a second statement,
again one snapshot. The parts' rows go in the transaction that drops the object, so that
second statement sees all of them or none; none means the object was dropped in between,
and the lookup starts again.

A ranged read of a large object touches one or two of its parts: ``PART_LAYOUTS_WITHIN`` loads
only the parts overlapping the bytes asked for (a ranged GET of an 8 MiB piece of a 1 GiB
object of 128 parts would otherwise decode the chunks of all 128). The same snapshot argument
holds for it: the parts it finds must cover the bytes without a gap (``covers``), else the
object was dropped in between.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, select

from diststorage.meta.base import IN_NAMED_NAMESPACE, INFO_COLUMNS, IS_COMMITTED, object_info
from diststorage.meta.digests import NO_DIGESTS
from diststorage.meta.models import CHUNKS, INLINE_BODIES, OBJECTS
from diststorage.meta.multipart_models import OBJECT_PARTS
from diststorage.meta.records import ObjectLayout, PartLayout, StoredChunk, unpack_crcs

# The chunk columns are labelled apart from the object's.
_CHUNK_COLUMNS = (
    CHUNKS.c.id.label("chunk_id"),
    CHUNKS.c.node_id,
    CHUNKS.c.segment_index,
    CHUNKS.c.shard_index,
    CHUNKS.c.size_bytes.label("chunk_size_bytes"),
    CHUNKS.c.block_crcs,
    CHUNKS.c.block_digests,
    CHUNKS.c.state.label("chunk_state"),
    INLINE_BODIES.c.body.label("inline_body"),
)
# Outer joins, for objects without chunks (empty, inline and multipart ones).
_WITH_BYTES = OBJECTS.outerjoin(CHUNKS, CHUNKS.c.object_id == OBJECTS.c.id).outerjoin(
    INLINE_BODIES, INLINE_BODIES.c.object_id == OBJECTS.c.id
)

LAYOUT = (
    select(*INFO_COLUMNS, *_CHUNK_COLUMNS)
    .select_from(_WITH_BYTES)
    .where(IN_NAMED_NAMESPACE, OBJECTS.c.key == bindparam("key"), IS_COMMITTED)
    .order_by(CHUNKS.c.segment_index, CHUNKS.c.shard_index)
)
PART_LAYOUTS = (
    select(
        OBJECT_PARTS.c.part_index,
        OBJECT_PARTS.c.offset_bytes,
        *INFO_COLUMNS,
        *_CHUNK_COLUMNS,
    )
    .select_from(
        OBJECT_PARTS.join(OBJECTS, OBJECTS.c.id == OBJECT_PARTS.c.part_object_id)
        .outerjoin(CHUNKS, CHUNKS.c.object_id == OBJECTS.c.id)
        .outerjoin(INLINE_BODIES, INLINE_BODIES.c.object_id == OBJECTS.c.id)
    )
    .where(OBJECT_PARTS.c.object_id == bindparam("object_id"))
    .order_by(OBJECT_PARTS.c.part_index, CHUNKS.c.segment_index, CHUNKS.c.shard_index)
)
# The parts holding some of the bytes [start, end) of the object.
PART_LAYOUTS_WITHIN = PART_LAYOUTS.where(
    OBJECT_PARTS.c.offset_bytes < bindparam("end"),
    OBJECT_PARTS.c.offset_bytes + OBJECTS.c.size_bytes > bindparam("start"),
)


def object_layout(rows: Sequence[Any]) -> ObjectLayout:
    """The layout from one object's rows of ``LAYOUT`` (or of one part in ``PART_LAYOUTS``)."""
    chunks = tuple(
        StoredChunk(
            r.chunk_id,
            r.node_id,
            r.segment_index,
            r.shard_index,
            r.chunk_size_bytes,
            unpack_crcs(r.block_crcs),
            r.chunk_state,
            r.block_digests or NO_DIGESTS,
        )
        for r in rows
        if r.chunk_id is not None
    )
    return ObjectLayout(info=object_info(rows[0]), chunks=chunks, inline_body=rows[0].inline_body)


def part_layouts(rows: Sequence[Any]) -> tuple[PartLayout, ...]:
    """The parts from the rows of ``PART_LAYOUTS``, in order."""
    by_part: dict[int, list[Any]] = {}
    for row in rows:
        by_part.setdefault(row.part_index, []).append(row)
    return tuple(
        PartLayout(offset_bytes=part_rows[0].offset_bytes, layout=object_layout(part_rows))
        for _, part_rows in sorted(by_part.items())
    )


def covers(parts: Sequence[PartLayout], start: int, end: int) -> bool:
    """Whether the parts, in order, hold every byte of [start, end) with no gap between them."""
    if start >= end:
        return True
    if not parts or parts[0].offset_bytes > start or parts[-1].end_bytes < end:
        return False
    return all(a.end_bytes == b.offset_bytes for a, b in itertools.pairwise(parts))
