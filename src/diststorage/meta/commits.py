"""What committing an upload writes about its bytes, whatever the upload becomes: the visible
version of a key (``MetadataStore.commit_upload``) or a part of a multipart upload
(``MultipartStore.commit_part``). One set of statements, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeVar

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from diststorage.core.errors import AlreadyExists
from diststorage.meta.base import (
    INFO_COLUMNS,
    ObjectColumns,
    SegmentToRepair,
    add_garbage,
    checksum_columns,
    enqueue_repair,
)
from diststorage.meta.models import CHUNKS, INLINE_BODIES, OBJECTS
from diststorage.meta.records import (
    ChunkRef,
    DegradedSegment,
    NewObject,
    ObjectInfo,
    StoredChecksum,
    StoredChunk,
    pack_crcs,
)
from diststorage.meta.states import ObjectState

T = TypeVar("T")

# A replace that races other commits of its key tries this often before giving up.
COMMIT_ATTEMPTS = 8

_UPLOAD = select(OBJECTS.c.namespace_id, OBJECTS.c.state, *INFO_COLUMNS).where(
    OBJECTS.c.id == bindparam("object_id")
)
_INSERT_OBJECT = insert(OBJECTS)
_INSERT_INLINE = insert(INLINE_BODIES)
_RECORD_CHUNK = (
    update(CHUNKS)
    .where(CHUNKS.c.id == bindparam("chunk_id"))
    .values(
        size_bytes=bindparam("size_bytes"),
        block_crcs=bindparam("block_crcs"),
        block_digests=bindparam("block_digests"),
    )
)


def _mark_stored(state: ObjectState) -> Any:
    # The state is written into the statement: one statement per state, built once.
    return (
        update(OBJECTS)
        .where(OBJECTS.c.id == bindparam("object_id"))
        .values(
            state=state,
            size_bytes=bindparam("size_bytes"),
            md5_hex=bindparam("md5_hex"),
            committed_at=bindparam("committed_at"),
            checksum_algo=bindparam("checksum_algo"),
            checksum_type=bindparam("checksum_type"),
            checksum_value=bindparam("checksum_value"),
        )
    )


_MARK_STORED = {state: _mark_stored(state) for state in (ObjectState.COMMITTED, ObjectState.PART)}


class PendingColumns(ObjectColumns, Protocol):
    @property
    def namespace_id(self) -> int: ...
    @property
    def state(self) -> str: ...


def pending_upload(session: Session, object_id: str) -> PendingColumns:
    """The pending upload's row (namespace, state and ``INFO_COLUMNS``)."""
    row = session.execute(_UPLOAD, {"object_id": object_id}).one_or_none()
    assert row is not None and row.state == ObjectState.PENDING, "commit of an unknown upload"
    found: PendingColumns = row
    return found


def record_written(
    session: Session,
    object_id: str,
    chunks: Sequence[StoredChunk],
    dropped: Sequence[ChunkRef],
    degraded: Sequence[DegradedSegment],
    now: datetime,
) -> None:
    """Records what the nodes stored: each chunk's size, block CRCs and block digests; the
    planned chunks given up on (``dropped``) queued as garbage, in case a node stored them
    after all; the segments left below target queued for repair."""
    if dropped:
        add_garbage(session, dropped, now)
        session.execute(delete(CHUNKS).where(CHUNKS.c.id.in_([r.chunk_id for r in dropped])))
    enqueue_repair(
        session,
        [SegmentToRepair(object_id, d.segment_index, d.stripe_count, d.margin) for d in degraded],
        now,
    )
    if chunks:
        session.execute(
            _RECORD_CHUNK,
            [
                {
                    "chunk_id": c.chunk_id,
                    "size_bytes": c.size_bytes,
                    "block_crcs": pack_crcs(list(c.block_crcs)),
                    "block_digests": c.block_digests or None,
                }
                for c in chunks
            ],
        )


def mark_stored(
    session: Session,
    object_id: str,
    state: ObjectState,
    size_bytes: int,
    md5_hex: str,
    now: datetime,
    checksum: StoredChecksum | None,
) -> None:
    """Ends a pending upload as ``committed`` or ``part``, with what its body turned out to be."""
    session.execute(
        _MARK_STORED[state],
        {"object_id": object_id, "size_bytes": size_bytes, "md5_hex": md5_hex, "committed_at": now}
        | checksum_columns(checksum),
    )


async def commit_key(
    write: Callable[[Callable[[Session], T]], Awaitable[T]],
    operation: Callable[[Session], T],
    replace: bool,
) -> T:
    """Runs a commit that makes an object the visible version of its key."""
    for attempt in range(COMMIT_ATTEMPTS):
        try:
            return await write(operation)
        except IntegrityError as exc:
            # Another gateway committed the same key between our read and our write: a
            # create has lost; a replace tries again and replaces that version in turn
            # (the transaction rolled back whole, so trying again is safe).
            if not replace or attempt == COMMIT_ATTEMPTS - 1:
                raise AlreadyExists("the key was created concurrently") from exc
    raise AssertionError("unreachable")


def new_object_row(namespace_id: int, new: NewObject, now: datetime) -> dict[str, Any]:
    """The parameters of an object row's insert but ``state`` and ``touched_at``."""
    return {
        "id": new.object_id,
        "namespace_id": namespace_id,
        "key": new.key.encode(),
        "size_bytes": 0,
        "md5_hex": "",
        "content_type": new.content_type,
        "policy": new.policy,
        "stripe_size_bytes": new.stripe_size_bytes,
        "segment_stripes": new.segment_stripes,
        "gateway_id": new.gateway_id,
        "created_at": now,
        "attrs": new.attrs.to_json(),
    }


def insert_inline(
    session: Session,
    row: dict[str, Any],
    state: ObjectState,
    new: NewObject,
    body: bytes,
    md5_hex: str,
    checksum: StoredChecksum | None,
) -> ObjectInfo:
    """Inserts a small object's row (``new_object_row``) in its final state with its bytes
    beside it; returns the object as inserted."""
    now = row["created_at"]
    # Core statements on the transaction's connection: the session's execute adds its ORM
    # bookkeeping (a third of each statement's CPU) for nothing here.
    connection = session.connection()
    connection.execute(
        _INSERT_OBJECT,
        row
        | {
            "state": state,
            "size_bytes": len(body),
            "md5_hex": md5_hex,
            "committed_at": now,
            "touched_at": None,
        }
        | checksum_columns(checksum),
    )
    connection.execute(_INSERT_INLINE, {"object_id": new.object_id, "body": body})
    return ObjectInfo(
        object_id=new.object_id,
        key=new.key,
        size_bytes=len(body),
        md5_hex=md5_hex,
        content_type=new.content_type,
        policy=new.policy,
        stripe_size_bytes=new.stripe_size_bytes,
        segment_stripes=new.segment_stripes,
        created_at=now,
        attrs=new.attrs,
        checksum=checksum,
    )
