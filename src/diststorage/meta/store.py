"""The metadata store: every question the gateway asks of the database, and nothing else.

Each method is one transaction with a deadline. SQLAlchemy and driver errors are translated
here into ``Unavailable`` (database down, timed out) or the precise domain error; callers never
see a foreign exception. Cancellation: a cancelled call rolls its transaction back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from diststorage.core.errors import AlreadyExists, ObjectNotFound, Unavailable
from diststorage.meta.engine import make_engine, migrate
from diststorage.meta.models import (
    COMMITTED,
    PENDING,
    ChunkRow,
    GarbageChunk,
    Namespace,
    NodeRow,
    ObjectRow,
)
from diststorage.meta.records import (
    ChunkRef,
    DiscardedObject,
    ListingPage,
    NewObject,
    NodeInfo,
    ObjectInfo,
    ObjectLayout,
    PlannedChunk,
    StoredChunk,
    pack_crcs,
    unpack_crcs,
)

MAX_LIST_LIMIT = 1000


def _utc(moment: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix``."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _info(row: ObjectRow) -> ObjectInfo:
    return ObjectInfo(
        object_id=row.id,
        key=row.key.decode(),
        size_bytes=row.size_bytes,
        md5_hex=row.md5_hex,
        content_type=row.content_type,
        policy=row.policy,
        stripe_size_bytes=row.stripe_size_bytes,
        segment_stripes=row.segment_stripes,
        created_at=_utc(row.committed_at or row.created_at),
    )


class MetadataStore:
    def __init__(self, engine: AsyncEngine, timeout_s: float) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        # SQLite allows one writer; queueing writers here beats spinning on SQLITE_BUSY.
        self._write_lock: asyncio.Lock | None = (
            asyncio.Lock() if engine.dialect.name == "sqlite" else None
        )
        self._namespace_ids: dict[str, int] = {}

    @classmethod
    async def open(cls, url: str, timeout_s: float) -> MetadataStore:
        engine = make_engine(url, timeout_s)
        store = cls(engine, timeout_s)
        async with store._guard():
            await migrate(engine)
        return store

    async def close(self) -> None:
        await self._engine.dispose()

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._timeout_s):
                yield
        except TimeoutError as exc:
            raise Unavailable("the metadata database did not answer in time") from exc
        except (DBAPIError, SQLAlchemyError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise Unavailable(f"metadata database error: {type(exc).__name__}") from exc

    @contextlib.asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        async with self._guard(), self._sessions() as session:
            yield session

    @contextlib.asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncSession]:
        async with self._guard():
            lock = self._write_lock or contextlib.nullcontext()
            async with lock, self._sessions() as session, session.begin():
                yield session

    async def _namespace_id(self, session: AsyncSession, name: str) -> int:
        cached = self._namespace_ids.get(name)
        if cached is not None:
            return cached
        found = await session.scalar(select(Namespace.id).where(Namespace.name == name))
        if found is None:
            raise ObjectNotFound(f"namespace {name!r} does not exist")
        self._namespace_ids[name] = found
        return found

    # -- uploads -----------------------------------------------------------------------------

    async def begin_upload(self, new: NewObject, chunks: Sequence[PlannedChunk]) -> None:
        """Records a pending upload (invisible to readers) and its first planned chunks."""
        async with self._write() as session:
            session.add(
                ObjectRow(
                    id=new.object_id,
                    namespace_id=await self._namespace_id(session, new.namespace),
                    key=new.key.encode(),
                    state=PENDING,
                    size_bytes=0,
                    md5_hex="",
                    content_type=new.content_type,
                    policy=new.policy,
                    stripe_size_bytes=new.stripe_size_bytes,
                    segment_stripes=new.segment_stripes,
                    gateway_id=new.gateway_id,
                    created_at=datetime.now(UTC),
                )
            )
            await session.flush()
            session.add_all(_planned_rows(new.object_id, chunks))

    async def plan_chunks(self, object_id: str, chunks: Sequence[PlannedChunk]) -> None:
        """Records chunks of a pending upload before their bytes are sent."""
        async with self._write() as session:
            session.add_all(_planned_rows(object_id, chunks))

    async def commit_upload(
        self,
        object_id: str,
        size_bytes: int,
        md5_hex: str,
        chunks: Sequence[StoredChunk],
        replace: bool,
    ) -> DiscardedObject | None:
        """Makes the upload the visible version of its key, in one transaction.

        ``replace=False`` raises AlreadyExists when the key has a committed object. With
        ``replace=True`` the previous version disappears in the same transaction and the
        version it replaced is returned, its chunks queued as garbage for deletion.
        """
        try:
            async with self._write() as session:
                row = await session.get(ObjectRow, object_id)
                assert row is not None and row.state == PENDING, "commit of an unknown upload"
                previous = await session.scalar(
                    select(ObjectRow).where(
                        ObjectRow.namespace_id == row.namespace_id,
                        ObjectRow.key == row.key,
                        ObjectRow.state == COMMITTED,
                    )
                )
                discarded = None
                if previous is not None:
                    if not replace:
                        raise AlreadyExists(f"key {row.key.decode()!r} already exists")
                    discarded = await _discard_object(session, previous.id)
                for chunk in chunks:
                    await session.execute(
                        update(ChunkRow)
                        .where(ChunkRow.id == chunk.chunk_id, ChunkRow.object_id == object_id)
                        .values(
                            size_bytes=chunk.size_bytes,
                            block_crcs=pack_crcs(list(chunk.block_crcs)),
                        )
                    )
                row.state = COMMITTED
                row.size_bytes = size_bytes
                row.md5_hex = md5_hex
                row.committed_at = datetime.now(UTC)
                return discarded
        except IntegrityError as exc:
            # Another gateway committed the same key between our read and our write.
            raise AlreadyExists("the key was created concurrently") from exc

    async def abort_upload(self, object_id: str, undeleted: Sequence[ChunkRef]) -> None:
        """Forgets a pending upload; chunks that could not be deleted become garbage."""
        async with self._write() as session:
            _add_garbage(session, undeleted)
            await session.execute(delete(ChunkRow).where(ChunkRow.object_id == object_id))
            await session.execute(
                delete(ObjectRow).where(ObjectRow.id == object_id, ObjectRow.state == PENDING)
            )

    # -- reads -------------------------------------------------------------------------------

    async def key_exists(self, namespace: str, key: str) -> bool:
        async with self._read() as session:
            ns = await self._namespace_id(session, namespace)
            found = await session.scalar(
                select(ObjectRow.id).where(
                    ObjectRow.namespace_id == ns,
                    ObjectRow.key == key.encode(),
                    ObjectRow.state == COMMITTED,
                )
            )
            return found is not None

    async def get_info(self, namespace: str, key: str) -> ObjectInfo:
        async with self._read() as session:
            return _info(await self._committed(session, namespace, key))

    async def get_layout(self, namespace: str, key: str) -> ObjectLayout:
        async with self._read() as session:
            row = await self._committed(session, namespace, key)
            chunk_rows = await session.scalars(
                select(ChunkRow)
                .where(ChunkRow.object_id == row.id)
                .order_by(ChunkRow.segment_index, ChunkRow.shard_index)
            )
            chunks = tuple(
                StoredChunk(
                    chunk_id=c.id,
                    node_id=c.node_id,
                    segment_index=c.segment_index,
                    shard_index=c.shard_index,
                    size_bytes=c.size_bytes,
                    block_crcs=unpack_crcs(c.block_crcs),
                )
                for c in chunk_rows
            )
            return ObjectLayout(info=_info(row), chunks=chunks)

    async def _committed(self, session: AsyncSession, namespace: str, key: str) -> ObjectRow:
        ns = await self._namespace_id(session, namespace)
        row = await session.scalar(
            select(ObjectRow).where(
                ObjectRow.namespace_id == ns,
                ObjectRow.key == key.encode(),
                ObjectRow.state == COMMITTED,
            )
        )
        if row is None:
            raise ObjectNotFound(f"no object under key {key!r}")
        return row

    async def list_objects(
        self, namespace: str, prefix: str = "", after: str = "", limit: int = MAX_LIST_LIMIT
    ) -> ListingPage:
        """Committed objects whose key starts with ``prefix`` and sorts after ``after``."""
        limit = max(1, min(limit, MAX_LIST_LIMIT))
        async with self._read() as session:
            ns = await self._namespace_id(session, namespace)
            query = select(ObjectRow).where(
                ObjectRow.namespace_id == ns, ObjectRow.state == COMMITTED
            )
            if prefix:
                query = query.where(ObjectRow.key >= prefix.encode())
            if after:
                query = query.where(ObjectRow.key > after.encode())
            upper = _prefix_upper_bound(prefix.encode())
            if upper is not None:
                query = query.where(ObjectRow.key < upper)
            rows = list(await session.scalars(query.order_by(ObjectRow.key).limit(limit + 1)))
            return ListingPage(
                objects=tuple(_info(r) for r in rows[:limit]), truncated=len(rows) > limit
            )

    # -- deletes and garbage -----------------------------------------------------------------

    async def delete_object(self, namespace: str, key: str) -> DiscardedObject:
        """Removes the committed object; its chunks are queued as garbage and returned."""
        async with self._write() as session:
            row = await self._committed(session, namespace, key)
            return await _discard_object(session, row.id)

    async def forget_garbage(self, chunk_ids: Sequence[str]) -> None:
        if not chunk_ids:
            return
        async with self._write() as session:
            await session.execute(
                delete(GarbageChunk).where(GarbageChunk.chunk_id.in_(list(chunk_ids)))
            )

    async def list_garbage(
        self, limit: int, queued_before: datetime | None = None
    ) -> list[ChunkRef]:
        async with self._read() as session:
            query = select(GarbageChunk).order_by(GarbageChunk.created_at).limit(limit)
            if queued_before is not None:
                query = query.where(GarbageChunk.created_at < queued_before)
            rows = await session.scalars(query)
            return [ChunkRef(r.chunk_id, r.node_id) for r in rows]

    async def count_objects(self, namespace: str) -> int:
        async with self._read() as session:
            ns = await self._namespace_id(session, namespace)
            count = await session.scalar(
                select(func.count()).where(
                    ObjectRow.namespace_id == ns, ObjectRow.state == COMMITTED
                )
            )
            return int(count or 0)

    # -- nodes -------------------------------------------------------------------------------

    async def record_node(self, node: NodeInfo) -> None:
        async with self._write() as session:
            row = await session.get(NodeRow, node.node_id)
            if row is None:
                row = NodeRow(id=node.node_id, first_seen=node.first_seen)
                session.add(row)
            row.address = node.address
            row.capacity_bytes = node.capacity_bytes
            row.used_bytes = node.used_bytes
            row.free_bytes = node.free_bytes
            row.chunk_count = node.chunk_count
            row.last_heartbeat = node.last_heartbeat

    async def list_nodes(self) -> list[NodeInfo]:
        async with self._read() as session:
            rows = await session.scalars(select(NodeRow).order_by(NodeRow.address))
            return [
                NodeInfo(
                    node_id=r.id,
                    address=r.address,
                    capacity_bytes=r.capacity_bytes,
                    used_bytes=r.used_bytes,
                    free_bytes=r.free_bytes,
                    chunk_count=r.chunk_count,
                    first_seen=_utc(r.first_seen),
                    last_heartbeat=_utc(r.last_heartbeat),
                )
                for r in rows
            ]


def _planned_rows(object_id: str, chunks: Sequence[PlannedChunk]) -> list[ChunkRow]:
    return [
        ChunkRow(
            id=c.chunk_id,
            object_id=object_id,
            segment_index=c.segment_index,
            shard_index=c.shard_index,
            node_id=c.node_id,
            size_bytes=0,
            block_crcs=b"",
        )
        for c in chunks
    ]


def _add_garbage(session: AsyncSession, refs: Sequence[ChunkRef]) -> None:
    now = datetime.now(UTC)
    session.add_all(
        GarbageChunk(chunk_id=r.chunk_id, node_id=r.node_id, created_at=now) for r in refs
    )


async def _discard_object(session: AsyncSession, object_id: str) -> DiscardedObject:
    rows = await session.execute(
        select(ChunkRow.id, ChunkRow.node_id).where(ChunkRow.object_id == object_id)
    )
    refs = [ChunkRef(chunk_id, node_id) for chunk_id, node_id in rows]
    _add_garbage(session, refs)
    await session.execute(delete(ChunkRow).where(ChunkRow.object_id == object_id))
    await session.execute(delete(ObjectRow).where(ObjectRow.id == object_id))
    return DiscardedObject(object_id, tuple(refs))
