"""Where one object's shards are, a page of its segments at a time: what the object layout
route (``/_/objects/{key}/layout``) and the dashboard's object page show.

An object's bytes are cut into segments, each a set of chunks (one per shard index) on its own
nodes. An object completed from parts has no chunks of its own: each part row has its own
geometry and chunks, and the object's segments are its parts' segments in part order. The
segments are numbered across the whole object (``position``), which is what a page starts at.

Segments are counted from each piece's size and geometry, never from its chunk rows: a segment
all of whose chunks are gone still shows, with every shard missing. A page costs three reads
whatever the object's size: its row, its parts' geometry (none for a plain object; a row per
part, at most ``MAX_PART_NUMBER``), and the chunks of the page's segments alone, found on the
chunks' unique index (object, segment, shard). An object with thousands of segments is never
read whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, and_, bindparam, or_, select
from sqlalchemy.orm import Session

from diststorage.core.errors import ObjectNotFound
from diststorage.meta.base import (
    IN_NAMED_NAMESPACE,
    INFO_COLUMNS,
    IS_COMMITTED,
    StoreBase,
    object_info,
)
from diststorage.meta.models import CHUNKS, INLINE_BODIES, OBJECTS
from diststorage.meta.multipart_models import OBJECT_PARTS
from diststorage.meta.records import PlacedChunk, PlacedSegment, SegmentPage

MAX_SEGMENTS_PER_PAGE = 1000

_OBJECT = (
    select(*INFO_COLUMNS, INLINE_BODIES.c.object_id.label("inline_id"))
    .select_from(OBJECTS.outerjoin(INLINE_BODIES, INLINE_BODIES.c.object_id == OBJECTS.c.id))
    .where(IN_NAMED_NAMESPACE, OBJECTS.c.key == bindparam("key"), IS_COMMITTED)
)
_PARTS = (
    select(
        OBJECT_PARTS.c.part_index,
        OBJECT_PARTS.c.part_object_id,
        OBJECT_PARTS.c.offset_bytes,
        OBJECTS.c.size_bytes,
        OBJECTS.c.policy,
        OBJECTS.c.stripe_size_bytes,
        OBJECTS.c.segment_stripes,
        INLINE_BODIES.c.object_id.label("inline_id"),
    )
    .select_from(
        OBJECT_PARTS.join(OBJECTS, OBJECTS.c.id == OBJECT_PARTS.c.part_object_id).outerjoin(
            INLINE_BODIES, INLINE_BODIES.c.object_id == OBJECTS.c.id
        )
    )
    .where(OBJECT_PARTS.c.object_id == bindparam("object_id"))
    .order_by(OBJECT_PARTS.c.part_index)
)


@dataclass(frozen=True, slots=True)
class Piece:
    """A run of bytes with its own geometry and chunks: a plain object, or one part of an
    object completed from parts (``part_index`` set)."""

    object_id: str
    part_index: int | None
    offset_bytes: int  # where its bytes start in the object
    size_bytes: int
    policy: str
    stripe_size_bytes: int
    segment_stripes: int
    inline: bool

    @property
    def segment_bytes(self) -> int:
        return self.stripe_size_bytes * self.segment_stripes

    @property
    def segment_count(self) -> int:
        """Segments holding its bytes: none when the bytes are inline, or there are none."""
        if self.inline or self.size_bytes <= 0:
            return 0
        return -(-self.size_bytes // self.segment_bytes)

    def segment_span(self, segment_index: int) -> tuple[int, int]:
        """(offset in the object, bytes) of one of its segments."""
        start = segment_index * self.segment_bytes
        return self.offset_bytes + start, min(self.segment_bytes, self.size_bytes - start)

    def stripe_count(self, segment_index: int) -> int:
        _, size = self.segment_span(segment_index)
        return -(-size // self.stripe_size_bytes)


@dataclass(frozen=True, slots=True)
class WindowPiece:
    """The segments [first, end) of one piece that a page holds."""

    piece: Piece
    first: int
    end: int


def segment_window(pieces: Sequence[Piece], start: int, limit: int) -> list[WindowPiece]:
    """The segments at positions [start, start + limit) of the object, counted across its
    pieces in order, as runs of each piece's own segment indices. Pure."""
    window: list[WindowPiece] = []
    position = 0
    end = start + limit
    for piece in pieces:
        count = piece.segment_count
        first, last = max(start - position, 0), min(end - position, count)
        if first < last:
            window.append(WindowPiece(piece, first, last))
        position += count
        if position >= end:
            break
    return window


class PlacementStore(StoreBase):
    async def segment_page(self, namespace: str, key: str, start: int, limit: int) -> SegmentPage:
        """The committed object under ``key`` in ``namespace`` and its segments at positions
        [start, start + limit) (limit clamped to 1..MAX_SEGMENTS_PER_PAGE), each with every
        chunk its metadata records, damaged ones included. Raises ObjectNotFound for a key
        without a committed object or an unknown namespace, Unavailable when the database is.
        """
        start = max(start, 0)
        limit = max(1, min(limit, MAX_SEGMENTS_PER_PAGE))

        def operation(session: Session) -> SegmentPage:
            row = session.execute(
                _OBJECT, {"namespace": namespace, "key": key.encode()}
            ).one_or_none()
            if row is None:
                raise ObjectNotFound(f"no object under key {key!r} in bucket {namespace!r}")
            info = object_info(row)
            pieces = (
                _pieces(session, info.object_id)
                if info.part_count
                else [
                    Piece(
                        info.object_id,
                        None,
                        0,
                        info.size_bytes,
                        info.policy,
                        info.stripe_size_bytes,
                        info.segment_stripes,
                        row.inline_id is not None,
                    )
                ]
            )
            window = segment_window(pieces, start, limit)
            return SegmentPage(
                info=info,
                inline=row.inline_id is not None,
                segment_count=sum(p.segment_count for p in pieces),
                inline_parts=sum(1 for p in pieces if p.part_index is not None and p.inline),
                start=start,
                segments=_placed_segments(session, window),
            )

        return await self._read(operation)


def _pieces(session: Session, object_id: str) -> list[Piece]:
    return [
        Piece(
            r.part_object_id,
            r.part_index,
            r.offset_bytes,
            r.size_bytes,
            r.policy,
            r.stripe_size_bytes,
            r.segment_stripes,
            r.inline_id is not None,
        )
        for r in session.execute(_PARTS, {"object_id": object_id})
    ]


def _placed_segments(session: Session, window: Sequence[WindowPiece]) -> tuple[PlacedSegment, ...]:
    if not window:
        return ()
    # One range of the unique index (object, segment, shard) per piece of the page.
    ranges: list[ColumnElement[bool]] = [
        and_(
            CHUNKS.c.object_id == w.piece.object_id,
            CHUNKS.c.segment_index >= w.first,
            CHUNKS.c.segment_index < w.end,
        )
        for w in window
    ]
    rows = session.execute(
        select(
            CHUNKS.c.object_id,
            CHUNKS.c.segment_index,
            CHUNKS.c.shard_index,
            CHUNKS.c.id,
            CHUNKS.c.node_id,
            CHUNKS.c.size_bytes,
            CHUNKS.c.state,
        )
        .where(or_(*ranges))
        .order_by(CHUNKS.c.object_id, CHUNKS.c.segment_index, CHUNKS.c.shard_index)
    )
    chunks: dict[tuple[str, int], list[PlacedChunk]] = {}
    for object_id, segment_index, shard_index, chunk_id, node_id, size_bytes, state in rows:
        chunks.setdefault((object_id, segment_index), []).append(
            PlacedChunk(chunk_id, node_id, shard_index, size_bytes, state)
        )
    segments = []
    for w in window:
        piece = w.piece
        for index in range(w.first, w.end):
            offset, size = piece.segment_span(index)
            segments.append(
                PlacedSegment(
                    part_index=piece.part_index,
                    segment_index=index,
                    policy=piece.policy,
                    offset_bytes=offset,
                    size_bytes=size,
                    stripe_count=piece.stripe_count(index),
                    chunks=tuple(chunks.get((piece.object_id, index), ())),
                )
            )
    return tuple(segments)
