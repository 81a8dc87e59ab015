"""The metadata store: every question the gateway asks of the database, and nothing else.

Each method is one operation (a function over a sync SQLAlchemy session) run by the backend
(see backends) under a deadline. SQLAlchemy and driver errors are translated here into
``Unavailable`` (database down, timed out) or the precise domain error; callers never see a
foreign exception.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, delete, insert, select, update
from sqlalchemy.orm import Session

from diststorage.core.clock import SYSTEM_CLOCK, Clock
from diststorage.core.errors import ObjectNotFound
from diststorage.meta.accounts import AccountStore
from diststorage.meta.backends import Backend, open_backend
from diststorage.meta.base import (
    IN_NAMED_NAMESPACE,
    INFO_COLUMNS,
    IS_COMMITTED,
    ObjectColumns,
    QueryObserver,
    QueryTimings,
    StoreBase,
    add_garbage,
    insert_ignoring_duplicates,
    object_info,
    retrying_lost_connections,
    utc,
)
from diststorage.meta.commits import (
    commit_key,
    insert_inline,
    mark_stored,
    new_object_row,
    pending_upload,
    record_written,
)
from diststorage.meta.keys import Claim, discard_object, take_key, take_named_key
from diststorage.meta.layouts import (
    LAYOUT,
    PART_LAYOUTS,
    PART_LAYOUTS_WITHIN,
    covers,
    object_layout,
    part_layouts,
)
from diststorage.meta.listing import ListingScope, key_page, prefix_upper_bound
from diststorage.meta.maintenance import MaintenanceStore
from diststorage.meta.models import (
    CHUNKS,
    OBJECTS,
    GarbageChunk,
    Namespace,
    NodeRow,
    ObjectRow,
)
from diststorage.meta.multipart import MultipartStore
from diststorage.meta.placement import PlacementStore
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
    PartLayout,
    PlannedChunk,
    StoredChecksum,
    StoredChunk,
)
from diststorage.meta.states import NodeLifecycle, ObjectState

MAX_LIST_LIMIT = 1000

# Given a committed object's info, the bytes [start, end) of it that a read will need.
LayoutSpan = Callable[[ObjectInfo], tuple[int, int] | None]

# The hot statements, built once on the plain tables with their values bound at execution:
# building a statement and deriving its cache key cost more CPU than running it on SQLite.
_BY_KEY = (IN_NAMED_NAMESPACE, OBJECTS.c.key == bindparam("key"), IS_COMMITTED)
_COMMITTED_ID = select(OBJECTS.c.id).where(*_BY_KEY)
_COMMITTED_INFO = select(*INFO_COLUMNS).where(*_BY_KEY)
_INSERT_OBJECT = insert(OBJECTS)
_INSERT_CHUNKS = insert(CHUNKS)
_NAMESPACE_ID = select(Namespace.id).where(Namespace.name == bindparam("namespace"))
# A multipart object whose parts vanished between its two layout statements was dropped in
# between; its key is looked up again this often.
LAYOUT_ATTEMPTS = 4


class MetadataStore(StoreBase):
    """Namespaces (buckets) are named in every call and looked up by name in the very statement
    or transaction that uses them; no process keeps a name's id. Gateways share the database,
    and any of them may delete a bucket and create another of the same name (S3 DeleteBucket,
    CreateBucket): an id kept here would then name a dead namespace (writes failing, reads and
    listings finding nothing) or, where SQLite hands a deleted row's id to the next bucket
    made, another bucket altogether. Expiring kept ids would only shorten that window, and
    catching it afterwards cannot tell a reused id's rows from the right ones. The lookup is a
    probe of the names' unique index inside a statement already sent (``IN_NAMED_NAMESPACE``),
    or one more statement in a write's transaction, never a round trip of its own.
    """

    def __init__(self, backend: Backend, timeout_s: float, clock: Clock = SYSTEM_CLOCK) -> None:
        super().__init__(backend, timeout_s, clock, QueryTimings())
        self.maintenance = MaintenanceStore(backend, timeout_s, clock, self._timings)
        self.accounts = AccountStore(backend, timeout_s, clock, self._timings)
        self.multipart = MultipartStore(backend, timeout_s, clock, self._timings)
        self.placement = PlacementStore(backend, timeout_s, clock, self._timings)

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
                    # A daemon started while the database restarts waits for it, up to the
                    # deadline, rather than exit.
                    await retrying_lost_connections(store._backend.migrate, writes=True)
            except BaseException:
                await store.close()
                raise
        return store

    async def close(self) -> None:
        await self._backend.close()

    def observe_queries(self, observer: QueryObserver) -> None:
        """Tells ``observer`` how long each operation of this store (and of its maintenance,
        accounts and multipart stores) takes; replaces any observer set before."""
        self._timings.observer = observer

    @property
    def dialect(self) -> str:
        return self._backend.dialect

    @property
    def engine(self) -> Engine:
        """The backend's SQLAlchemy engine, for instrumentation only (see Backend.engine)."""
        return self._backend.engine

    @staticmethod
    def _namespace_id(session: Session, name: str) -> int:
        """The id the namespace has in this transaction (see the class docstring)."""
        found = session.scalar(_NAMESPACE_ID, {"namespace": name})
        if found is None:
            raise ObjectNotFound(f"namespace {name!r} does not exist")
        return found

    def _committed(self, session: Session, namespace: str, key: str) -> ObjectColumns:
        """The committed object's ``INFO_COLUMNS``."""
        row = session.execute(_COMMITTED_INFO, _by_key(namespace, key)).one_or_none()
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
                new_object_row(self._namespace_id(session, new.namespace), new, now)
                | {"state": ObjectState.PENDING, "touched_at": now},
            )
            _insert_planned(session, new.object_id, chunks)

        await self._write(operation)

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
            namespace_id, replaced = take_named_key(
                session, new.namespace, new.key.encode(), Claim(replace, if_match), now
            )
            row = new_object_row(namespace_id, new, now)
            info = insert_inline(session, row, ObjectState.COMMITTED, new, body, md5_hex, checksum)
            return CommitOutcome(info, replaced)

        # Grouped with the other small objects' commits waiting (see group_commit).
        return await commit_key(self._write_retryable, operation, replace)

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
            row = pending_upload(session, object_id)
            committed_at = self._now()
            replaced = take_key(
                session, row.namespace_id, row.key, Claim(replace, if_match), committed_at
            )
            record_written(session, object_id, chunks, dropped, degraded, committed_at)
            mark_stored(
                session,
                object_id,
                ObjectState.COMMITTED,
                size_bytes,
                md5_hex,
                committed_at,
                checksum,
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

        return await commit_key(self._write, operation, replace)

    async def abort_upload(self, object_id: str, undeleted: Sequence[ChunkRef]) -> None:
        """Forgets a pending upload; chunks that could not be deleted become garbage."""

        def operation(session: Session) -> None:
            add_garbage(session, undeleted, self._now())
            session.execute(delete(CHUNKS).where(CHUNKS.c.object_id == object_id))
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
        rows = await self._read_rows(_COMMITTED_ID, _by_key(namespace, key))
        return bool(rows)

    async def get_info(self, namespace: str, key: str) -> ObjectInfo:
        rows = await self._read_rows(_COMMITTED_INFO, _by_key(namespace, key))
        if not rows:
            raise ObjectNotFound(f"no object under key {key!r}")
        return object_info(rows[0])

    async def get_layout(
        self, namespace: str, key: str, span: LayoutSpan | None = None
    ) -> ObjectLayout:
        """The committed object and where its bytes are; for an object completed from parts,
        each part's own layout (see layouts). ``span``, given the object's info, names the
        bytes [start, end) that will be read (None: all of them); then only the parts holding
        some of those come, in order."""
        params = _by_key(namespace, key)
        for _ in range(LAYOUT_ATTEMPTS):
            rows = await self._read_rows(LAYOUT, params)
            if not rows:
                raise ObjectNotFound(f"no object under key {key!r}")
            layout = object_layout(rows)
            if not layout.info.part_count:
                return layout
            bounds = None if span is None else span(layout.info)
            parts = await self._part_layouts(layout.info, bounds)
            if parts is not None:
                return dataclasses.replace(layout, parts=parts)
        raise ObjectNotFound(f"the object under key {key!r} keeps changing")

    async def _part_layouts(
        self, info: ObjectInfo, bounds: tuple[int, int] | None
    ) -> tuple[PartLayout, ...] | None:
        """All the object's parts, or those holding some of the bytes ``bounds``; None when
        the object was dropped since its row was read (its parts went with it)."""
        if bounds is None:
            rows = await self._read_rows(PART_LAYOUTS, {"object_id": info.object_id})
            parts = part_layouts(rows)
            return parts if len(parts) == info.part_count else None
        start, end = max(bounds[0], 0), min(bounds[1], info.size_bytes)
        if start >= end:
            return ()
        params = {"object_id": info.object_id, "start": start, "end": end}
        parts = part_layouts(await self._read_rows(PART_LAYOUTS_WITHIN, params))
        return parts if covers(parts, start, end) else None

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
            lambda session: _discard_committed(
                session, self._committed(session, namespace, key), self._now()
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

    async def record_node(self, node: NodeInfo, admit: bool = True) -> NodeLifecycle:
        """Writes what the node reported and when; returns the lifecycle the database holds
        for it, which is how a gateway learns of a drain or an acceptance made on another.

        ``first_seen`` is written only for a new node, and the lifecycle only by admission:
        a new node's row is active when ``admit`` (open admission), else pending; with
        ``admit`` a pending row becomes active too. Otherwise the lifecycle is the operator's
        (see MaintenanceStore.set_node_lifecycle and accept_node).
        """
        reported = {
            "address": node.address,
            "capacity_bytes": node.capacity_bytes,
            "used_bytes": node.used_bytes,
            "free_bytes": node.free_bytes,
            "chunk_count": node.chunk_count,
            "last_heartbeat": node.last_heartbeat,
        }
        joining = NodeLifecycle.ACTIVE if admit else NodeLifecycle.PENDING

        def operation(session: Session) -> NodeLifecycle:
            # Several gateways may see a new node's first beat at once: insert if absent
            # (never failing on the race), then update.
            session.execute(
                insert_ignoring_duplicates(session, NodeRow),
                [
                    {
                        "id": node.node_id,
                        "first_seen": node.first_seen,
                        "lifecycle": joining,
                        **reported,
                    }
                ],
            )
            row = update(NodeRow).where(NodeRow.id == node.node_id)
            session.execute(row.values(reported))
            if admit:
                session.execute(
                    row.where(NodeRow.lifecycle == NodeLifecycle.PENDING).values(
                        lifecycle=NodeLifecycle.ACTIVE
                    )
                )
            stored = session.scalar(select(NodeRow.lifecycle).where(NodeRow.id == node.node_id))
            return NodeLifecycle(stored) if stored is not None else joining

        return await self._write(operation)

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


def _by_key(namespace: str, key: str) -> dict[str, Any]:
    """The parameters of ``_BY_KEY`` (and of layouts.LAYOUT)."""
    return {"namespace": namespace, "key": key.encode()}


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


def _discard_committed(session: Session, row: ObjectColumns, now: datetime) -> DiscardedObject:
    return discard_object(session, row.id, now, has_parts=bool(row.part_count))
