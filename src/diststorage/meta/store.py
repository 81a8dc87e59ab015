"""The metadata store: every question the gateway asks of the database, and nothing else.

Each method is one operation (a function over a sync SQLAlchemy session) run by the backend
(see backends) under a deadline. SQLAlchemy and driver errors are translated here into
``Unavailable`` (database down, timed out) or the precise domain error; callers never see a
foreign exception.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from diststorage.core.clock import SYSTEM_CLOCK, Clock
from diststorage.core.errors import AlreadyExists, ObjectNotFound, PreconditionFailed
from diststorage.meta.accounts import AccountStore
from diststorage.meta.backends import Backend, open_backend
from diststorage.meta.base import (
    INFO_COLUMNS,
    IS_COMMITTED,
    ObjectColumns,
    SegmentToRepair,
    StoreBase,
    add_garbage,
    checksum_columns,
    enqueue_repair,
    insert_ignoring_duplicates,
    object_info,
    utc,
)
from diststorage.meta.listing import ListingScope, key_page, prefix_upper_bound
from diststorage.meta.maintenance import MaintenanceStore
from diststorage.meta.models import (
    CHUNKS,
    INLINE_BODIES,
    OBJECTS,
    GarbageChunk,
    Namespace,
    NodeRow,
    ObjectRow,
)
from diststorage.meta.records import (
    ChunkRef,
    CommitOutcome,
    DegradedSegment,
    DiscardedObject,
    KeyPage,
    ListingPage,
    NewObject,
    NodeInfo,
    ObjectInfo,
    ObjectLayout,
    PlannedChunk,
    StoredChecksum,
    StoredChunk,
    pack_crcs,
    unpack_crcs,
)
from diststorage.meta.states import NodeLifecycle, ObjectState

MAX_LIST_LIMIT = 1000
# A replace that races other commits of its key tries this often before giving up.
COMMIT_ATTEMPTS = 8

# The hot statements, built once on the plain tables with their values bound at execution:
# building a statement and deriving its cache key cost more CPU than running it on SQLite.
_BY_KEY = (
    OBJECTS.c.namespace_id == bindparam("namespace_id"),
    OBJECTS.c.key == bindparam("key"),
    IS_COMMITTED,
)
_COMMITTED_ID = select(OBJECTS.c.id).where(*_BY_KEY)
_COMMITTED_TAG = select(OBJECTS.c.id, OBJECTS.c.md5_hex, OBJECTS.c.part_count).where(*_BY_KEY)
_COMMITTED_INFO = select(*INFO_COLUMNS).where(*_BY_KEY)
# One statement, so the chunks are read in the same snapshot as their object (a replace
# committed in between cannot leave the object without its chunks); outer, for objects
# without chunks (empty and inline ones). The chunk columns are labelled apart from the object's.
_LAYOUT = (
    select(
        *INFO_COLUMNS,
        CHUNKS.c.id.label("chunk_id"),
        CHUNKS.c.node_id,
        CHUNKS.c.segment_index,
        CHUNKS.c.shard_index,
        CHUNKS.c.size_bytes.label("chunk_size_bytes"),
        CHUNKS.c.block_crcs,
        CHUNKS.c.state.label("chunk_state"),
        INLINE_BODIES.c.body.label("inline_body"),
    )
    .select_from(
        OBJECTS.outerjoin(CHUNKS, CHUNKS.c.object_id == OBJECTS.c.id).outerjoin(
            INLINE_BODIES, INLINE_BODIES.c.object_id == OBJECTS.c.id
        )
    )
    .where(*_BY_KEY)
    .order_by(CHUNKS.c.segment_index, CHUNKS.c.shard_index)
)
_UPLOAD = select(OBJECTS.c.namespace_id, OBJECTS.c.state, *INFO_COLUMNS).where(
    OBJECTS.c.id == bindparam("object_id")
)
_INSERT_OBJECT = insert(OBJECTS)
_INSERT_CHUNKS = insert(CHUNKS)
_INSERT_INLINE = insert(INLINE_BODIES)
_RECORD_CHUNK = (
    update(CHUNKS)
    .where(CHUNKS.c.id == bindparam("chunk_id"))
    .values(size_bytes=bindparam("size_bytes"), block_crcs=bindparam("block_crcs"))
)
_COMMIT_OBJECT = (
    update(OBJECTS)
    .where(OBJECTS.c.id == bindparam("object_id"))
    .values(
        state=ObjectState.COMMITTED,
        size_bytes=bindparam("size_bytes"),
        md5_hex=bindparam("md5_hex"),
        committed_at=bindparam("committed_at"),
        checksum_algo=bindparam("checksum_algo"),
        checksum_type=bindparam("checksum_type"),
        checksum_value=bindparam("checksum_value"),
    )
)
_CHUNK_REFS = select(CHUNKS.c.id, CHUNKS.c.node_id).where(
    CHUNKS.c.object_id == bindparam("object_id")
)
_DELETE_CHUNKS = delete(CHUNKS).where(CHUNKS.c.object_id == bindparam("object_id"))
_DELETE_INLINE = delete(INLINE_BODIES).where(INLINE_BODIES.c.object_id == bindparam("object_id"))
_DELETE_OBJECT = delete(OBJECTS).where(OBJECTS.c.id == bindparam("object_id"))


class MetadataStore(StoreBase):
    def __init__(self, backend: Backend, timeout_s: float, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(backend, timeout_s, clock)
        self._namespace_ids: dict[str, int] = {}
        self.maintenance = MaintenanceStore(backend, timeout_s, clock)
        self.accounts = AccountStore(backend, timeout_s, clock, self._forget_namespace)

    @classmethod
    async def open(
        cls, url: str, timeout_s: float, migrate: bool = True, clock: Clock = SYSTEM_CLOCK
    ) -> MetadataStore:
        """Connects; with ``migrate``, first brings the schema to the newest revision.

        ``clock`` stamps the rows (see StoreBase)."""
        store = cls(open_backend(url, timeout_s), timeout_s, clock)
        if migrate:
            try:
                async with store._guard():
                    await store._backend.migrate()
            except BaseException:
                await store.close()
                raise
        return store

    async def close(self) -> None:
        await self._backend.close()

    @property
    def dialect(self) -> str:
        return self._backend.dialect

    def _forget_namespace(self, name: str) -> None:
        """A deleted bucket's id must not outlive it here: one made again under the same
        name has another."""
        self._namespace_ids.pop(name, None)

    @property
    def engine(self) -> Engine:
        """The backend's SQLAlchemy engine, for instrumentation only (see Backend.engine)."""
        return self._backend.engine

    def _namespace_id(self, session: Session, name: str) -> int:
        cached = self._namespace_ids.get(name)
        if cached is not None:
            return cached
        found = session.scalar(select(Namespace.id).where(Namespace.name == name))
        if found is None:
            raise ObjectNotFound(f"namespace {name!r} does not exist")
        self._namespace_ids[name] = found
        return found

    async def _key_params(self, namespace: str, key: str) -> dict[str, Any]:
        """The parameters of ``_BY_KEY``, for statements run without a session."""
        namespace_id = self._namespace_ids.get(namespace)
        if namespace_id is None:
            namespace_id = await self._read(lambda session: self._namespace_id(session, namespace))
        return {"namespace_id": namespace_id, "key": key.encode()}

    def _by_key(self, session: Session, namespace: str, key: str) -> dict[str, Any]:
        """The parameters of ``_BY_KEY``."""
        return {"namespace_id": self._namespace_id(session, namespace), "key": key.encode()}

    def _committed(self, session: Session, namespace: str, key: str) -> ObjectColumns:
        """The committed object's ``INFO_COLUMNS``."""
        row = session.execute(_COMMITTED_INFO, self._by_key(session, namespace, key)).one_or_none()
        if row is None:
            raise ObjectNotFound(f"no object under key {key!r}")
        return row

    # -- uploads -----------------------------------------------------------------------------

    async def begin_upload(self, new: NewObject, chunks: Sequence[PlannedChunk]) -> None:
        """Records a pending upload (invisible to readers) and its first planned chunks."""

        def operation(session: Session) -> None:
            now = self._now()
            session.execute(
                _INSERT_OBJECT,
                self._object_row(session, new, now)
                | {"state": ObjectState.PENDING, "touched_at": now},
            )
            _insert_planned(session, new.object_id, chunks)

        await self._write(operation)

    def _object_row(self, session: Session, new: NewObject, now: datetime) -> dict[str, Any]:
        """The parameters of ``_INSERT_OBJECT`` but ``state`` and ``touched_at``."""
        return {
            "id": new.object_id,
            "namespace_id": self._namespace_id(session, new.namespace),
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

    async def commit_inline(
        self,
        new: NewObject,
        body: bytes,
        md5_hex: str,
        replace: bool,
        checksum: StoredChecksum | None = None,
        if_match: str | None = None,
    ) -> CommitOutcome:
        """Stores a small object whole, bytes and all, as the visible version of its key in
        one transaction (no pending row: there is nothing on any node to clean up after a
        crash). ``replace``, ``checksum`` and ``if_match`` as for ``commit_upload``."""

        def operation(session: Session) -> CommitOutcome:
            now = self._now()
            row = self._object_row(session, new, now)
            replaced = _take_key(
                session, row["namespace_id"], row["key"], _Claim(replace, if_match), now
            )
            size = len(body)
            session.execute(
                _INSERT_OBJECT,
                row
                | {
                    "state": ObjectState.COMMITTED,
                    "size_bytes": size,
                    "md5_hex": md5_hex,
                    "committed_at": now,
                    "touched_at": None,
                }
                | checksum_columns(checksum),
            )
            session.execute(_INSERT_INLINE, {"object_id": new.object_id, "body": body})
            info = ObjectInfo(
                object_id=new.object_id,
                key=new.key,
                size_bytes=size,
                md5_hex=md5_hex,
                content_type=new.content_type,
                policy=new.policy,
                stripe_size_bytes=new.stripe_size_bytes,
                segment_stripes=new.segment_stripes,
                created_at=now,
                attrs=new.attrs,
                checksum=checksum,
            )
            return CommitOutcome(info, replaced)

        return await self._commit_key(operation, replace)

    async def plan_chunks(self, object_id: str, chunks: Sequence[PlannedChunk]) -> None:
        """Records chunks of a pending upload before their bytes are sent."""
        await self._write(lambda session: _insert_planned(session, object_id, chunks))

    async def commit_upload(
        self,
        object_id: str,
        size_bytes: int,
        md5_hex: str,
        chunks: Sequence[StoredChunk],
        replace: bool,
        dropped: Sequence[ChunkRef] = (),
        degraded: Sequence[DegradedSegment] = (),
        checksum: StoredChecksum | None = None,
        if_match: str | None = None,
    ) -> CommitOutcome:
        """Makes the upload the visible version of its key, in one transaction.

        ``replace=False`` raises AlreadyExists when the key has a committed object. With
        ``replace=True`` the previous version disappears in the same transaction and is
        returned in the outcome, its chunks queued as garbage for deletion. ``if_match`` (an
        unquoted ETag, or ``*`` for any) commits only over a committed version with that ETag,
        else raises PreconditionFailed: decided in this transaction, so of racing commits
        that all matched one version, one wins. ``checksum`` is kept with the object.

        A degraded write names the planned chunks it gave up on (``dropped``: queued as
        garbage, in case a node stored them after all) and the segments left below target,
        which are queued for repair in the same transaction.
        """

        def operation(session: Session) -> CommitOutcome:
            row = session.execute(_UPLOAD, {"object_id": object_id}).one_or_none()
            assert row is not None and row.state == ObjectState.PENDING, (
                "commit of an unknown upload"
            )
            committed_at = self._now()
            replaced = _take_key(
                session, row.namespace_id, row.key, _Claim(replace, if_match), committed_at
            )
            if dropped:
                add_garbage(session, dropped, committed_at)
                session.execute(
                    delete(CHUNKS).where(CHUNKS.c.id.in_([r.chunk_id for r in dropped]))
                )
            enqueue_repair(
                session,
                [
                    SegmentToRepair(object_id, d.segment_index, d.stripe_count, d.margin)
                    for d in degraded
                ],
                committed_at,
            )
            if chunks:
                session.execute(
                    _RECORD_CHUNK,
                    [
                        {
                            "chunk_id": c.chunk_id,
                            "size_bytes": c.size_bytes,
                            "block_crcs": pack_crcs(list(c.block_crcs)),
                        }
                        for c in chunks
                    ],
                )
            session.execute(
                _COMMIT_OBJECT,
                {
                    "object_id": object_id,
                    "size_bytes": size_bytes,
                    "md5_hex": md5_hex,
                    "committed_at": committed_at,
                }
                | checksum_columns(checksum),
            )
            # The object as the update above left it.
            info = dataclasses.replace(
                object_info(row),
                size_bytes=size_bytes,
                md5_hex=md5_hex,
                created_at=committed_at,
                checksum=checksum,
            )
            return CommitOutcome(info, replaced)

        return await self._commit_key(operation, replace)

    async def _commit_key(
        self, operation: Callable[[Session], CommitOutcome], replace: bool
    ) -> CommitOutcome:
        """Runs a commit that makes an object the visible version of its key."""
        for attempt in range(COMMIT_ATTEMPTS):
            try:
                return await self._write(operation)
            except IntegrityError as exc:
                # Another gateway committed the same key between our read and our write: a
                # create has lost; a replace tries again and replaces that version in turn
                # (the transaction rolled back whole, so trying again is safe).
                if not replace or attempt == COMMIT_ATTEMPTS - 1:
                    raise AlreadyExists("the key was created concurrently") from exc
        raise AssertionError("unreachable")

    async def abort_upload(self, object_id: str, undeleted: Sequence[ChunkRef]) -> None:
        """Forgets a pending upload; chunks that could not be deleted become garbage."""

        def operation(session: Session) -> None:
            add_garbage(session, undeleted, self._now())
            session.execute(_DELETE_CHUNKS, {"object_id": object_id})
            session.execute(
                delete(ObjectRow).where(
                    ObjectRow.id == object_id, ObjectRow.state == ObjectState.PENDING
                )
            )

        await self._write(operation)

    async def upload_state(self, object_id: str) -> str | None:
        """``pending``, ``committed`` or None (gone): how an upload whose commit answer was
        lost actually ended."""
        return await self._read(
            lambda session: session.scalar(select(ObjectRow.state).where(ObjectRow.id == object_id))
        )

    # -- reads -------------------------------------------------------------------------------

    # The lookups every request makes are one statement each, run without a session.

    async def key_exists(self, namespace: str, key: str) -> bool:
        rows = await self._read_rows(_COMMITTED_ID, await self._key_params(namespace, key))
        return bool(rows)

    async def get_info(self, namespace: str, key: str) -> ObjectInfo:
        rows = await self._read_rows(_COMMITTED_INFO, await self._key_params(namespace, key))
        if not rows:
            raise ObjectNotFound(f"no object under key {key!r}")
        return object_info(rows[0])

    async def get_layout(self, namespace: str, key: str) -> ObjectLayout:
        rows = await self._read_rows(_LAYOUT, await self._key_params(namespace, key))
        if not rows:
            raise ObjectNotFound(f"no object under key {key!r}")
        chunks = tuple(
            StoredChunk(
                r.chunk_id,
                r.node_id,
                r.segment_index,
                r.shard_index,
                r.chunk_size_bytes,
                unpack_crcs(r.block_crcs),
                r.chunk_state,
            )
            for r in rows
            if r.chunk_id is not None
        )
        return ObjectLayout(
            info=object_info(rows[0]), chunks=chunks, inline_body=rows[0].inline_body
        )

    async def list_objects(
        self, namespace: str, prefix: str = "", after: str = "", limit: int = MAX_LIST_LIMIT
    ) -> ListingPage:
        """Committed objects whose key starts with ``prefix`` and sorts after ``after``."""
        limit = max(1, min(limit, MAX_LIST_LIMIT))

        def operation(session: Session) -> ListingPage:
            query = select(*INFO_COLUMNS).where(
                OBJECTS.c.namespace_id == self._namespace_id(session, namespace),
                IS_COMMITTED,
            )
            if prefix:
                query = query.where(OBJECTS.c.key >= prefix.encode())
            if after:
                query = query.where(OBJECTS.c.key > after.encode())
            upper = prefix_upper_bound(prefix.encode())
            if upper is not None:
                query = query.where(OBJECTS.c.key < upper)
            rows = session.execute(query.order_by(OBJECTS.c.key).limit(limit + 1)).all()
            return ListingPage(
                objects=tuple(object_info(r) for r in rows[:limit]), truncated=len(rows) > limit
            )

        return await self._read(operation)

    async def list_keys(
        self, namespace: str, prefix: str, delimiter: str, start_after: str, limit: int
    ) -> KeyPage:
        """A page of an S3 listing (ListObjects V1 and V2): committed objects whose key starts
        with ``prefix`` and sorts after ``start_after`` (byte order of their UTF-8), where a
        key holding ``delimiter`` (any length; empty: none) after the prefix is rolled into
        the common prefix that ends at the delimiter's first occurrence. At most ``limit``
        entries (objects and common prefixes count alike; clamped to 0..MAX_LIST_LIMIT; 0
        gives an empty page that is not truncated). A ``start_after`` that is one of the
        listing's common prefixes skips every key under it, so ``next_start_after`` continues
        a page that ended on one.

        Costs one indexed read per common prefix plus a few batched reads of plain keys,
        never a read of the keys under a common prefix (see listing). Raises ObjectNotFound
        for an unknown namespace, Unavailable when the database is."""
        scope = ListingScope(prefix.encode(), delimiter.encode())
        after = start_after.encode()
        limit = max(0, min(limit, MAX_LIST_LIMIT))
        return await self._read(
            lambda session: key_page(
                session, self._namespace_id(session, namespace), scope, after, limit
            )
        )

    # -- deletes and garbage -----------------------------------------------------------------

    async def delete_object(self, namespace: str, key: str) -> DiscardedObject:
        """Removes the committed object; its chunks are queued as garbage and returned."""
        return await self._write(
            lambda session: _discard_object(
                session, self._committed(session, namespace, key).id, self._now()
            )
        )

    async def forget_garbage(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        await self._write(
            lambda session: session.execute(
                delete(GarbageChunk).where(GarbageChunk.chunk_id.in_(list(chunk_ids)))
            )
        )

    async def list_garbage(
        self, limit: int, queued_before: datetime | None = None
    ) -> list[ChunkRef]:
        def operation(session: Session) -> list[ChunkRef]:
            query = select(GarbageChunk).order_by(GarbageChunk.created_at).limit(limit)
            if queued_before is not None:
                query = query.where(GarbageChunk.created_at < queued_before)
            return [ChunkRef(r.chunk_id, r.node_id) for r in session.scalars(query)]

        return await self._read(operation)

    # -- nodes -------------------------------------------------------------------------------

    async def record_node(self, node: NodeInfo) -> None:
        """Writes what the node reported and when; ``first_seen`` only for a new node, and
        the lifecycle never (it is the operator's, see MaintenanceStore.set_node_lifecycle)."""
        reported = {
            "address": node.address,
            "capacity_bytes": node.capacity_bytes,
            "used_bytes": node.used_bytes,
            "free_bytes": node.free_bytes,
            "chunk_count": node.chunk_count,
            "last_heartbeat": node.last_heartbeat,
        }

        def operation(session: Session) -> None:
            # Several gateways may see a new node's first beat at once: insert if absent
            # (never failing on the race), then update.
            session.execute(
                insert_ignoring_duplicates(session, NodeRow),
                [{"id": node.node_id, "first_seen": node.first_seen, **reported}],
            )
            session.execute(update(NodeRow).where(NodeRow.id == node.node_id).values(reported))

        await self._write(operation)

    async def list_nodes(self) -> list[NodeInfo]:
        def operation(session: Session) -> list[NodeInfo]:
            rows = session.scalars(select(NodeRow).order_by(NodeRow.address))
            return [
                NodeInfo(
                    node_id=r.id,
                    address=r.address,
                    capacity_bytes=r.capacity_bytes,
                    used_bytes=r.used_bytes,
                    free_bytes=r.free_bytes,
                    chunk_count=r.chunk_count,
                    first_seen=utc(r.first_seen),
                    last_heartbeat=utc(r.last_heartbeat),
                    lifecycle=NodeLifecycle(r.lifecycle),
                )
                for r in rows
            ]

        return await self._read(operation)


def _insert_planned(session: Session, object_id: str, chunks: Sequence[PlannedChunk]) -> None:
    if not chunks:
        return  # an INSERT with no parameter sets would add one row of defaults
    session.execute(
        _INSERT_CHUNKS,
        [
            {
                "id": c.chunk_id,
                "object_id": object_id,
                "segment_index": c.segment_index,
                "shard_index": c.shard_index,
                "node_id": c.node_id,
                "size_bytes": 0,
                "block_crcs": b"",
            }
            for c in chunks
        ],
    )


@dataclass(frozen=True, slots=True)
class _Claim:
    """How a commit may take its key: over any version (``replace``), only over none, or
    only over the version with the ETag ``if_match`` (``*``: over any version, not none)."""

    replace: bool
    if_match: str | None = None


def _take_key(
    session: Session, namespace_id: int, key: bytes, claim: _Claim, now: datetime
) -> DiscardedObject | None:
    """Clears the way for a new committed version of the key: the version there, if any, is
    discarded (its chunks queued as garbage at ``now``) and returned; for a create it raises
    AlreadyExists, and for a version other than the one ``if_match`` names PreconditionFailed."""
    previous = session.execute(
        _COMMITTED_TAG, {"namespace_id": namespace_id, "key": key}
    ).one_or_none()
    if claim.if_match is not None:
        etag = None if previous is None else _etag(previous.md5_hex, previous.part_count)
        if etag is None or claim.if_match not in ("*", etag):
            raise PreconditionFailed(f"key {key.decode()!r} is not at ETag {claim.if_match}")
    if previous is None:
        return None
    if not claim.replace:
        raise AlreadyExists(f"key {key.decode()!r} already exists")
    return _discard_object(session, previous.id, now)


def _etag(md5_hex: str, part_count: int | None) -> str:
    return f"{md5_hex}-{part_count}" if part_count else md5_hex


def _discard_object(session: Session, object_id: str, now: datetime) -> DiscardedObject:
    rows = session.execute(_CHUNK_REFS, {"object_id": object_id})
    refs = tuple(ChunkRef(chunk_id, node_id) for chunk_id, node_id in rows)
    add_garbage(session, refs, now)
    session.execute(_DELETE_CHUNKS, {"object_id": object_id})
    session.execute(_DELETE_INLINE, {"object_id": object_id})
    session.execute(_DELETE_OBJECT, {"object_id": object_id})
    return DiscardedObject(object_id, refs)
