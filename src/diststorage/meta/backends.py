"""How store operations reach the database, per backend.

Store operations are plain functions over a sync SQLAlchemy ``Session``; a backend runs them.

- SQLite: sync pysqlite. The hot single-statement lookups run in place on the event loop
  while they stay fast (see inline_reads), else on a reader thread's own autocommit
  connection; other reads run in a small pool of reader threads; writes run in one writer thread
  that commits whatever writes are waiting as one transaction (group commit), each in its own
  SAVEPOINT, so one fsync covers many callers while each still succeeds or fails alone (see
  group_commit, which spares the SAVEPOINTs while none fails). The
  loop that feeds the writer thread is a worker (``SqliteWriter``), started by the first
  write, and the queue in front of it is bounded (``WRITE_QUEUE_BOUND``). With
  SQLAlchemy's asyncio adapter every cursor step was a thread hop (2 ms of CPU for one
  lookup, against 0.9 ms here) and every commit its own fsync.
- PostgreSQL: asyncpg through ``AsyncSession.run_sync``: no threads, the server does the rest.
  A ``retryable`` write (a small object's commit) is grouped with the others waiting, as on
  SQLite (``PostgresGroupCommit``): one BEGIN, connection check-out and COMMIT (one WAL flush)
  for the batch instead of each. Other writes run in a transaction of their own. The lookups
  of ``read_rows`` run in autocommit on a pool of their own, without its liveness ping: one
  round trip each instead of four (ping, BEGIN, SELECT, ROLLBACK). A lookup that finds its
  connection dead fails as a lost connection, and a read is tried again after one
  (``StoreBase``).

Cancellation: a caller cancelled before its operation starts is skipped; one cancelled while
it runs does not stop it (a thread cannot be interrupted). Like any commit whose answer was
lost, the outcome must then be read back by whoever needs it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Engine, Executable, Row, create_engine, event, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from diststorage.core.clock import SYSTEM_CLOCK
from diststorage.core.filemodes import create_private_file
from diststorage.core.worker import Workers
from diststorage.meta.group_commit import (
    BatchCommitter,
    Outcome,
    PostgresGroupCommit,
    QueuedWrite,
    commit_batch_sync,
    queue_write,
)
from diststorage.meta.inline_reads import InlineReads
from diststorage.meta.migrate import upgrade

T = TypeVar("T")
Operation = Callable[[Session], T]

SQLITE_READ_THREADS = 4
AUTOCOMMIT = "AUTOCOMMIT"
LOOKUP_CONNECTIONS = 16


class Backend(Protocol):
    dialect: str

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine under the backend, for instrumentation only (event listeners
        such as a statement counter): statements go through the methods below."""
        ...

    async def read(self, operation: Operation[T]) -> T:
        """Runs ``operation`` in a read-only session."""
        ...

    async def write(self, operation: Operation[T], retryable: bool = False) -> T:
        """Runs ``operation`` in a transaction, committed when it returns. ``retryable``: the
        operation has no effects outside its session and may be run more than once (see
        group_commit); it may then share a transaction with others'."""
        ...

    async def read_rows(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
        """The rows of one read-only statement, which sees one snapshot: the cheap path for
        the lookups every request makes. Rows have the selected columns as attributes (on
        SQLite plain named tuples, see sqlite_lookups, which also skip the engine's
        statement events)."""
        ...

    async def migrate(self) -> None:
        """Brings the schema up to date."""
        ...

    async def close(self) -> None: ...


def open_backend(url: str, timeout_s: float) -> Backend:
    """A backend for a database URL: ``sqlite:///path`` or ``postgresql://user@host/db``."""
    scheme = url.split(":", 1)[0]
    if scheme.startswith("sqlite"):
        return SqliteBackend("sqlite:" + url.split(":", 1)[1], timeout_s)
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        return PostgresBackend("postgresql+asyncpg:" + url.split(":", 1)[1], timeout_s)
    raise ValueError(f"unsupported metadata URL scheme {scheme!r}: use sqlite or postgresql")


class SqliteBackend:
    dialect = "sqlite"

    def __init__(self, url: str, timeout_s: float) -> None:
        self._engine = _sqlite_engine(url, timeout_s)
        self._sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._inline = InlineReads(self._engine)
        self._readers = ThreadPoolExecutor(SQLITE_READ_THREADS, thread_name_prefix="meta-read")
        # Each reader thread's own autocommit connection, kept open for read_rows.
        self._reader_local = threading.local()
        self._reader_connections: list[Connection] = []
        self._reader_connections_lock = threading.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="meta-write")
        self._committer = SqliteWriter(self._writer, self._sessions)
        self.workers = Workers(SYSTEM_CLOCK)
        """The writer's worker (``statuses()``: queue depth and bound)."""
        self._writing = False

    @property
    def engine(self) -> Engine:
        return self._engine

    async def migrate(self) -> None:
        def run() -> None:
            with self._engine.begin() as connection:
                upgrade(connection)

        await asyncio.get_running_loop().run_in_executor(self._writer, run)

    async def read(self, operation: Operation[T]) -> T:
        def run() -> T:
            with self._sessions() as session:
                return operation(session)

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    async def read_rows(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
        # No session and no transaction: a lone SELECT in autocommit mode is its own snapshot,
        # and skipping the session, BEGIN and ROLLBACK takes a lookup from about 100 µs of
        # CPU to 25.
        rows = await self._inline.rows(statement, params)
        if rows is not None:
            return rows

        def run() -> Sequence[Row[Any]]:
            return self._reader_connection().execute(statement, params).all()

        return await asyncio.get_running_loop().run_in_executor(self._readers, run)

    def _reader_connection(self) -> Connection:
        connection: Connection | None = getattr(self._reader_local, "connection", None)
        if connection is None:
            connection = self._engine.connect().execution_options(isolation_level=AUTOCOMMIT)
            self._reader_local.connection = connection
            with self._reader_connections_lock:
                self._reader_connections.append(connection)
        return connection

    async def write(self, operation: Operation[T], retryable: bool = False) -> T:
        """Queues ``operation`` for the writer thread's next group commit. While the queue is
        full (``WRITE_QUEUE_BOUND``) the caller waits for room, within the store's database
        timeout like any other wait for the database: past it, the store raises Unavailable."""
        if not self._writing:
            self._writing = True
            await self.workers.open()
            self.workers.start(self._committer)
        return await queue_write(self._committer.queue, operation, retryable)

    async def close(self) -> None:
        await self.workers.aclose()
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        for connection in self._reader_connections:
            connection.close()
        self._inline.close()
        self._engine.dispose()


class SqliteWriter(BatchCommitter):
    """The worker that feeds the writer thread: one group commit of up to ``MAX_BATCH``
    queued writes per unit of work (``BatchCommitter``)."""

    name = "sqlite-writer"

    def __init__(self, writer: ThreadPoolExecutor, sessions: sessionmaker[Session]) -> None:
        super().__init__()
        self._writer = writer
        self._sessions = sessions

    async def commit(self, batch: list[QueuedWrite]) -> list[Outcome]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, self._commit_sync, batch)

    def _commit_sync(self, batch: list[QueuedWrite]) -> list[Outcome]:
        with self._sessions() as session:
            return commit_batch_sync(session, batch)


def _sqlite_engine(url: str, timeout_s: float) -> Engine:
    _create_private_database_file(url)
    engine = create_engine(
        url,
        # A session's connection per reader thread and the writer's, each reader thread's
        # own autocommit one, and the event loop's (InlineReads).
        pool_size=2 * SQLITE_READ_THREADS + 2,
        connect_args={"timeout": timeout_s, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy (the driver's implicit BEGIN is buggy), then
        # WAL for concurrent readers; FULL sync so a committed upload survives power loss.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            f"busy_timeout={int(timeout_s * 1000)}",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # An autocommit connection runs each statement in its own snapshot: a BEGIN there
        # would open a transaction nothing ever ends.
        if connection.get_execution_options().get("isolation_level") != AUTOCOMMIT:
            connection.exec_driver_sql("BEGIN")

    return engine


def _create_private_database_file(url: str) -> None:
    """Creates a new SQLite file owner-only (0600) before SQLite does (with the umask's mode):
    it holds every key and small objects whole. SQLite gives its -wal and -shm files the
    database file's mode."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        create_private_file(Path(database))


class PostgresBackend:
    dialect = "postgresql"

    def __init__(self, url: str, timeout_s: float) -> None:
        self._engine: AsyncEngine = create_async_engine(
            url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            pool_timeout=timeout_s,
            connect_args={"timeout": timeout_s, "command_timeout": timeout_s},
        )
        # The same database for read_rows, without the liveness ping (see the module
        # docstring) and in autocommit: a lone SELECT is its own snapshot, and a transaction
        # around it cost a BEGIN and a ROLLBACK, two round trips more per lookup. Its pool
        # holds a connection for each lookup at the concurrency a busy client keeps up: one
        # past the pool is opened and closed again, a connection set-up per lookup.
        self._lookups: AsyncEngine = create_async_engine(
            url,
            isolation_level=AUTOCOMMIT,
            pool_size=LOOKUP_CONNECTIONS,
            max_overflow=LOOKUP_CONNECTIONS,
            pool_timeout=timeout_s,
            connect_args={"timeout": timeout_s, "command_timeout": timeout_s},
        )
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        self._grouped = PostgresGroupCommit(self._sessions)
        self.workers = Workers(SYSTEM_CLOCK)
        """The group commit's worker (``statuses()``: queue depth and bound)."""
        self._grouping = False

    @property
    def engine(self) -> Engine:
        return self._engine.sync_engine

    async def migrate(self) -> None:
        async with self._engine.begin() as connection:
            await connection.run_sync(upgrade)

    async def read(self, operation: Operation[T]) -> T:
        async with self._sessions() as session:
            return await session.run_sync(operation)

    async def write(self, operation: Operation[T], retryable: bool = False) -> T:
        if retryable:
            if not self._grouping:
                self._grouping = True
                await self.workers.open()
                self.workers.start(self._grouped)
            return await queue_write(self._grouped.queue, operation, retryable)
        async with self._sessions() as session, session.begin():
            return await session.run_sync(operation)

    async def read_rows(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any]:
        async with self._lookups.connect() as connection:
            result = await connection.execute(statement, params)
            return result.all()

    async def close(self) -> None:
        await self.workers.aclose()
        await self._lookups.dispose()
        await self._engine.dispose()
