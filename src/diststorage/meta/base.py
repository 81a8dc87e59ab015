"""What every store class shares: running operations under a deadline with errors translated,
and the few statements more than one of them writes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import Executable, Insert, bindparam, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from diststorage.core.clock import SYSTEM_CLOCK, Clock, utc_now
from diststorage.core.errors import Unavailable
from diststorage.meta.backends import Backend, Operation
from diststorage.meta.models import OBJECTS, GarbageChunk, Namespace, RepairTask
from diststorage.meta.records import ChunkRef, ObjectAttributes, ObjectInfo, StoredChecksum
from diststorage.meta.states import ObjectState

T = TypeVar("T")

RECONNECT_FIRST_PAUSE_S = 0.05
RECONNECT_LONGEST_PAUSE_S = 1.0

# The state is written into the SQL, not bound: only then can PostgreSQL's generic plans (which
# asyncpg's prepared statements get) prove the partial unique index's "state = 'committed'"
# and use it; with a parameter every lookup became a sequential scan.
IS_COMMITTED = OBJECTS.c.state == literal_column(f"'{ObjectState.COMMITTED}'")
# Rows whose chunks hold durable bytes: committed objects and the parts of multipart uploads
# (of open uploads and of completed objects). Repair, scrub reports and the chunk audit look
# after both alike; only listings and reads by key keep to committed rows.
IS_STORED = OBJECTS.c.state.in_(
    [
        literal_column(f"'{ObjectState.COMMITTED}'"),
        literal_column(f"'{ObjectState.PART}'"),
    ]
)

# Objects of the namespace named by the bound ``namespace``, its id looked up in the statement
# itself: a bucket's id is never kept between statements, since any gateway may drop the bucket
# and make another of the same name (see MetadataStore). One probe of the names' unique index,
# no round trip; PostgreSQL runs it once, as an InitPlan, and still plans the index below.
IN_NAMED_NAMESPACE = OBJECTS.c.namespace_id == (
    select(Namespace.id).where(Namespace.name == bindparam("namespace")).scalar_subquery()
)

# What object_info reads: queries that only need an ObjectInfo select these, not whole rows.
INFO_COLUMNS = (
    OBJECTS.c.id,
    OBJECTS.c.key,
    OBJECTS.c.size_bytes,
    OBJECTS.c.md5_hex,
    OBJECTS.c.content_type,
    OBJECTS.c.policy,
    OBJECTS.c.stripe_size_bytes,
    OBJECTS.c.segment_stripes,
    OBJECTS.c.created_at,
    OBJECTS.c.committed_at,
    OBJECTS.c.attrs,
    OBJECTS.c.checksum_algo,
    OBJECTS.c.checksum_type,
    OBJECTS.c.checksum_value,
    OBJECTS.c.part_count,
)


def utc(moment: datetime) -> datetime:
    # SQLite hands timestamps back without a zone; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def segment_stripe_count(
    size_bytes: int, stripe_size_bytes: int, segment_stripes: int, segment_index: int
) -> int:
    stripes = -(-size_bytes // stripe_size_bytes)
    return max(0, min(segment_stripes, stripes - segment_index * segment_stripes))


class ObjectColumns(Protocol):
    """What object_info reads: an ORM row, or a result row with ``INFO_COLUMNS``."""

    @property
    def id(self) -> str: ...
    @property
    def key(self) -> bytes: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def md5_hex(self) -> str: ...
    @property
    def content_type(self) -> str: ...
    @property
    def policy(self) -> str: ...
    @property
    def stripe_size_bytes(self) -> int: ...
    @property
    def segment_stripes(self) -> int: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def committed_at(self) -> datetime | None: ...
    @property
    def attrs(self) -> str | None: ...
    @property
    def checksum_algo(self) -> str | None: ...
    @property
    def checksum_type(self) -> str | None: ...
    @property
    def checksum_value(self) -> str | None: ...
    @property
    def part_count(self) -> int: ...


def object_info(row: ObjectColumns) -> ObjectInfo:
    return ObjectInfo(
        object_id=row.id,
        key=row.key.decode(),
        size_bytes=row.size_bytes,
        md5_hex=row.md5_hex,
        content_type=row.content_type,
        policy=row.policy,
        stripe_size_bytes=row.stripe_size_bytes,
        segment_stripes=row.segment_stripes,
        created_at=utc(row.committed_at or row.created_at),
        attrs=ObjectAttributes.from_json(row.attrs),
        checksum=stored_checksum(row.checksum_algo, row.checksum_type, row.checksum_value),
        part_count=row.part_count or 0,
    )


def stored_checksum(
    algorithm: str | None, kind: str | None, value: str | None
) -> StoredChecksum | None:
    if algorithm is None or kind is None or value is None:
        return None
    return StoredChecksum(algorithm, kind, value)


def checksum_columns(checksum: StoredChecksum | None) -> dict[str, str | None]:
    """The checksum columns' values for an insert or update."""
    if checksum is None:
        return {"checksum_algo": None, "checksum_type": None, "checksum_value": None}
    return {
        "checksum_algo": checksum.algorithm,
        "checksum_type": checksum.kind,
        "checksum_value": checksum.value,
    }


QueryObserver = Callable[[str, float], None]
"""Told each operation's kind ("read" or "write") and how long it took, in seconds."""


class QueryTimings:
    """Where the stores over one backend report how long their operations take (the
    gateway's ``diststorage_meta_query_seconds``); nowhere until an observer is set."""

    def __init__(self) -> None:
        self.observer: QueryObserver | None = None

    @contextlib.contextmanager
    def timed(self, kind: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            if self.observer is not None:
                self.observer(kind, time.perf_counter() - started)


class StoreBase:
    """Rows are stamped with the wall time of this process's clock, not the database's: the
    same clock the gateway's parts compare those stamps with (a grace, a cutoff)."""

    def __init__(
        self,
        backend: Backend,
        timeout_s: float,
        clock: Clock = SYSTEM_CLOCK,
        timings: QueryTimings | None = None,
    ) -> None:
        self._backend = backend
        self._timeout_s = timeout_s
        self._clock = clock
        self._timings = timings if timings is not None else QueryTimings()

    def _now(self, delay_s: float = 0.0) -> datetime:
        """The wall time now (plus ``delay_s``), as stored in timestamp columns."""
        return utc_now(self._clock) + timedelta(seconds=delay_s)

    @contextlib.asynccontextmanager
    async def _guard(self) -> AsyncIterator[None]:
        try:
            async with asyncio.timeout(self._timeout_s):
                yield
        except TimeoutError as exc:
            raise Unavailable("the metadata database did not answer in time") from exc
        except (DBAPIError, SQLAlchemyError, OSError) as exc:
            if isinstance(exc, IntegrityError):
                raise
            raise Unavailable(f"metadata database error: {type(exc).__name__}") from exc

    async def _read(self, operation: Operation[T]) -> T:
        with self._timings.timed("read"):
            async with self._guard():
                return await retrying_lost_connections(lambda: self._backend.read(operation))

    async def _read_rows(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
        with self._timings.timed("read"):
            async with self._guard():
                return await retrying_lost_connections(
                    lambda: self._backend.read_rows(statement, params)
                )

    async def _write(self, operation: Operation[T], retryable: bool = False) -> T:
        """Runs a write (``retryable``: see Backend.write) under the deadline."""
        with self._timings.timed("write"):
            async with self._guard():
                return await retrying_lost_connections(
                    lambda: self._backend.write(operation, retryable), writes=True
                )

    async def _write_retryable(self, operation: Operation[T]) -> T:
        """A write whose operation has no effects outside its session and may run twice."""
        return await self._write(operation, retryable=True)


def is_lost_connection(error: BaseException) -> bool:
    """The database could not be reached or dropped the connection (a restart, a failover),
    as opposed to a statement it refused: an OSError on connect, an invalidated connection, or
    a PostgreSQL connection-exception (08…) or shutdown/starting-up (57P0x) SQLSTATE."""
    if isinstance(error, OSError):
        return True
    if not isinstance(error, DBAPIError):
        return False
    code = str(getattr(error.orig, "pgcode", None) or "")
    return error.connection_invalidated or code.startswith("08") or code.startswith("57P0")


def never_reached_the_database(error: BaseException) -> bool:
    """The operation failed getting a connection, before it sent any statement: a refused
    connect, or an error SQLAlchemy raised from the pool with no statement attached."""
    if isinstance(error, ConnectionRefusedError):
        return True
    return isinstance(error, DBAPIError) and error.statement is None and is_lost_connection(error)


async def retrying_lost_connections(
    operation: Callable[[], Awaitable[T]], writes: bool = False
) -> T:
    """Runs an operation again while the database is out of reach, until the caller's deadline
    cancels it: a PostgreSQL restart or failover takes a second or two that would otherwise
    fail every request in flight. A read has no effects and is tried again whenever it lost
    its connection; a write (``writes``) only when it never reached the database, because one
    that lost its connection at COMMIT may have committed."""
    pause_s = RECONNECT_FIRST_PAUSE_S
    while True:
        try:
            return await operation()
        except (DBAPIError, OSError) as error:
            retry = never_reached_the_database(error) if writes else is_lost_connection(error)
            if not retry:
                raise
        await asyncio.sleep(pause_s)
        pause_s = min(pause_s * 2, RECONNECT_LONGEST_PAUSE_S)


def insert_ignoring_duplicates(session: Session, table: type[object]) -> Insert:
    """An INSERT that skips rows whose primary key exists: both dialects spell it
    ON CONFLICT DO NOTHING, but SQLAlchemy builds it per dialect."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    statement: Insert = module.insert(table).on_conflict_do_nothing()
    return statement


def add_garbage(session: Session, refs: Sequence[ChunkRef], now: datetime) -> None:
    if not refs:
        return
    session.execute(
        insert_ignoring_duplicates(session, GarbageChunk),
        [{"chunk_id": r.chunk_id, "node_id": r.node_id, "created_at": now} for r in refs],
    )


@dataclass(frozen=True, slots=True)
class SegmentToRepair:
    object_id: str
    segment_index: int
    stripe_count: int
    margin: int


def enqueue_repair(session: Session, segments: Sequence[SegmentToRepair], now: datetime) -> None:
    """Queues segments for the repair worker, due ``now``; a segment already queued stays as
    it is."""
    if not segments:
        return
    session.execute(
        insert_ignoring_duplicates(session, RepairTask),
        [
            {
                "object_id": s.object_id,
                "segment_index": s.segment_index,
                "stripe_count": s.stripe_count,
                "margin": s.margin,
                "attempts": 0,
                "queued_at": now,
                "not_before": now,
            }
            for s in segments
        ],
    )
