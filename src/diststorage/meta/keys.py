"""How a commit takes its key, and how an object version leaves: the statements every path
that makes or drops a visible version shares (a PUT, a multipart Complete, a DELETE).

Dropping a version drops its bytes' rows in the same transaction and queues its chunks as
garbage. An object completed from parts owns its part rows: they, their chunks and their
inline bodies go with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, delete, select
from sqlalchemy.orm import Session

from diststorage.core.errors import AlreadyExists, ObjectNotFound, PreconditionFailed
from diststorage.meta.base import IS_COMMITTED, add_garbage
from diststorage.meta.models import CHUNKS, INLINE_BODIES, OBJECTS, Namespace
from diststorage.meta.multipart_models import OBJECT_PARTS
from diststorage.meta.records import ChunkRef, DiscardedObject, entity_tag

_COMMITTED_TAG = select(OBJECTS.c.id, OBJECTS.c.md5_hex, OBJECTS.c.part_count).where(
    OBJECTS.c.namespace_id == bindparam("namespace_id"),
    OBJECTS.c.key == bindparam("key"),
    IS_COMMITTED,
)
_NAMESPACES = Namespace.__table__
# The namespace's id and the key's committed version (NULLs when there is none) in one
# statement: no row at all means no such namespace.
_NAMED_TAG = (
    select(
        _NAMESPACES.c.id.label("namespace_id"),
        OBJECTS.c.id,
        OBJECTS.c.md5_hex,
        OBJECTS.c.part_count,
    )
    .select_from(
        _NAMESPACES.outerjoin(
            OBJECTS,
            and_(
                OBJECTS.c.namespace_id == _NAMESPACES.c.id,
                OBJECTS.c.key == bindparam("key"),
                IS_COMMITTED,
            ),
        )
    )
    .where(_NAMESPACES.c.name == bindparam("namespace"))
)
_CHUNK_REFS = select(CHUNKS.c.id, CHUNKS.c.node_id).where(
    CHUNKS.c.object_id == bindparam("object_id")
)
_DELETE_CHUNKS = delete(CHUNKS).where(CHUNKS.c.object_id == bindparam("object_id"))
_DELETE_INLINE = delete(INLINE_BODIES).where(INLINE_BODIES.c.object_id == bindparam("object_id"))
_DELETE_OBJECT = delete(OBJECTS).where(OBJECTS.c.id == bindparam("object_id"))
_PART_IDS = (
    select(OBJECT_PARTS.c.part_object_id)
    .where(OBJECT_PARTS.c.object_id == bindparam("object_id"))
    .order_by(OBJECT_PARTS.c.part_index)
)
_DELETE_OBJECT_PARTS = delete(OBJECT_PARTS).where(
    OBJECT_PARTS.c.object_id == bindparam("object_id")
)


@dataclass(frozen=True, slots=True)
class Claim:
    """How a commit may take its key: over any version (``replace``), only over none, or
    only over the version with the ETag ``if_match`` (``*``: over any version, not none)."""

    replace: bool
    if_match: str | None = None


def take_key(
    session: Session, namespace_id: int, key: bytes, claim: Claim, now: datetime
) -> DiscardedObject | None:
    """Clears the way for a new committed version of the key: the version there, if any, is
    discarded (its chunks queued as garbage at ``now``) and returned; for a create it raises
    AlreadyExists, and for a version other than the one ``if_match`` names PreconditionFailed."""
    previous = session.execute(
        _COMMITTED_TAG, {"namespace_id": namespace_id, "key": key}
    ).one_or_none()
    return _claim(session, previous, key, claim, now)


def take_named_key(
    session: Session, namespace: str, key: bytes, claim: Claim, now: datetime
) -> tuple[int, DiscardedObject | None]:
    """``take_key`` in the namespace named ``namespace``, whose id it returns too, found in
    the same statement as the key's version (one round trip less for a small object's
    commit). Raises ObjectNotFound for an unknown namespace."""
    # On the transaction's connection: the session's ORM bookkeeping buys nothing here.
    found = (
        session.connection().execute(_NAMED_TAG, {"namespace": namespace, "key": key}).one_or_none()
    )
    if found is None:
        raise ObjectNotFound(f"namespace {namespace!r} does not exist")
    previous = None if found.id is None else found
    return found.namespace_id, _claim(session, previous, key, claim, now)


def _claim(
    session: Session, previous: Any, key: bytes, claim: Claim, now: datetime
) -> DiscardedObject | None:
    """``take_key`` once the key's committed version (id, md5_hex, part_count) is known."""
    if claim.if_match is not None:
        tag = None if previous is None else entity_tag(previous.md5_hex, previous.part_count)
        if tag is None or claim.if_match not in ("*", tag):
            raise PreconditionFailed(f"key {key.decode()!r} is not at ETag {claim.if_match}")
    if previous is None:
        return None
    if not claim.replace:
        raise AlreadyExists(f"key {key.decode()!r} already exists")
    return discard_object(session, previous.id, now, has_parts=bool(previous.part_count))


def discard_object(
    session: Session, object_id: str, now: datetime, has_parts: bool = False
) -> DiscardedObject:
    """Drops an object row with its chunks (queued as garbage at ``now``) and inline body;
    with ``has_parts`` (an object completed from parts), its part rows too."""
    part_ids: list[str] = []
    if has_parts:
        part_ids = list(session.scalars(_PART_IDS, {"object_id": object_id}))
        session.execute(_DELETE_OBJECT_PARTS, {"object_id": object_id})
    refs = [*drop_rows(session, part_ids, now), *drop_rows(session, [object_id], now)]
    return DiscardedObject(object_id, tuple(refs))


def drop_rows(session: Session, object_ids: Sequence[str], now: datetime) -> list[ChunkRef]:
    """Deletes object rows that nothing points at any more (no object_parts or upload_parts
    row), their chunks queued as garbage at ``now``; returns those chunks."""
    if not object_ids:
        return []
    refs: list[ChunkRef] = []
    for object_id in object_ids:
        rows = session.execute(_CHUNK_REFS, {"object_id": object_id})
        refs.extend(ChunkRef(chunk_id, node_id) for chunk_id, node_id in rows)
    add_garbage(session, refs, now)
    # One parameter set for the one row of a plain delete: the cheaper single execution.
    params: dict[str, str] | list[dict[str, str]] = (
        {"object_id": object_ids[0]}
        if len(object_ids) == 1
        else [{"object_id": object_id} for object_id in object_ids]
    )
    session.execute(_DELETE_CHUNKS, params)
    session.execute(_DELETE_INLINE, params)
    session.execute(_DELETE_OBJECT, params)
    return refs
