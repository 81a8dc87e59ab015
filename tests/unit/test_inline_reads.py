"""SQLite lookups run on the event loop while they are fast, and leave it when they are not:
a locked database or lookups that keep waiting on the disk go to the reader threads."""

from __future__ import annotations

import asyncio
import mmap
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from diststorage.meta.backends import SqliteBackend
from diststorage.meta.inline_reads import (
    SLOW_WAIT_S,
    THREADS_FOR_S,
    InlineReads,
    disk_reads,
)

LOOKUP = text("SELECT value FROM pairs WHERE name = :name")


def _make_database(path: Path) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE pairs (name TEXT PRIMARY KEY, value INTEGER)")
        connection.execute("INSERT INTO pairs VALUES ('a', 1)")
    connection.close()


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[SqliteBackend]:
    path = tmp_path / "meta.db"
    _make_database(path)
    backend = SqliteBackend(f"sqlite:///{path}", timeout_s=5.0)
    yield backend
    await backend.close()


def _record_threads(backend: SqliteBackend) -> list[int]:
    threads: list[int] = []

    def before_execute(*_args: Any) -> None:
        threads.append(threading.get_ident())

    event.listen(backend._engine, "before_cursor_execute", before_execute)
    return threads


async def test_a_lookup_runs_on_the_event_loop_thread(backend: SqliteBackend) -> None:
    threads = _record_threads(backend)
    rows = await backend.read_rows(LOOKUP, {"name": "a"})
    assert [tuple(row) for row in rows] == [(1,)]
    assert threads[-1] == threading.get_ident()


async def test_opening_waits_for_a_locked_database_off_the_event_loop(
    backend: SqliteBackend, tmp_path: Path
) -> None:
    # A connection in exclusive locking mode keeps every other one out of a WAL database.
    holder = sqlite3.connect(tmp_path / "meta.db", check_same_thread=False)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    ticker = asyncio.create_task(tick())
    asyncio.get_running_loop().call_later(0.5, holder.close)
    try:
        rows = await backend.read_rows(LOOKUP, {"name": "a"})
    finally:
        ticker.cancel()
    assert [tuple(row) for row in rows] == [(1,)]
    # Half a second waiting for the lock, and the loop kept ticking throughout.
    assert ticks >= 20, ticks


async def test_a_lookup_that_finds_the_database_locked_runs_in_a_thread(
    backend: SqliteBackend,
) -> None:
    await backend.read_rows(LOOKUP, {"name": "a"})  # the loop's connection is open
    threads = _record_threads(backend)
    loop_thread = threading.get_ident()

    def locked_on_the_loop(*_args: Any) -> None:
        # What the driver raises when a WAL reader meets a lock (recovery, say): with
        # several processes on one file that can happen, and a test cannot time it.
        if threading.get_ident() == loop_thread:
            busy = sqlite3.OperationalError("database is locked")
            busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise OperationalError("SELECT", {}, busy)

    event.listen(backend._engine, "before_cursor_execute", locked_on_the_loop)
    rows = await backend.read_rows(LOOKUP, {"name": "a"})
    assert [tuple(row) for row in rows] == [(1,)]
    assert threads[-1] != loop_thread


class _Clocks:
    """A wall clock that moves by ``lookup_s`` while each statement runs."""

    def __init__(self, engine: Engine, lookup_s: float) -> None:
        self.wall = 0.0
        self.lookup_s = lookup_s
        event.listen(engine, "before_cursor_execute", self._statement_runs)

    def _statement_runs(self, *_args: Any) -> None:
        self.wall += self.lookup_s

    def clock(self) -> float:
        return self.wall

    def disk_reads(self) -> int:
        """Reads from the disk: one per statement run, as if each one missed the cache."""
        return round(self.wall / self.lookup_s) if self.lookup_s else 0


async def test_lookups_that_keep_waiting_go_to_the_threads_for_a_while(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    _make_database(path)
    engine = create_engine(f"sqlite:///{path}")
    clocks = _Clocks(engine, lookup_s=4 * SLOW_WAIT_S)
    # The CPU clock stands still and every lookup reads the disk: all of the time was spent
    # waiting for it.
    reads = InlineReads(
        engine, clock=clocks.clock, cpu_clock=lambda: 0.0, disk_reads=clocks.disk_reads
    )
    try:
        in_place = 0
        while await reads.rows(LOOKUP, {"name": "a"}) is not None:
            in_place += 1
            assert in_place < 50, "lookups that wait 2 ms each never left the event loop"
        # One slow lookup alone does not do it: a process taking the CPU for a moment would.
        assert in_place > 1
        clocks.wall += THREADS_FOR_S / 2
        assert await reads.rows(LOOKUP, {"name": "a"}) is None
        clocks.wall += THREADS_FOR_S
        clocks.lookup_s = 0.0
        rows = await reads.rows(LOOKUP, {"name": "a"})
        assert rows is not None and [tuple(row) for row in rows] == [(1,)]
    finally:
        reads.close()
        engine.dispose()


async def test_time_on_the_cpu_keeps_lookups_in_place(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    _make_database(path)
    engine = create_engine(f"sqlite:///{path}")
    clocks = _Clocks(engine, lookup_s=4 * SLOW_WAIT_S)
    # The CPU clock moves exactly as the wall clock: all of the time was spent computing.
    reads = InlineReads(engine, clock=clocks.clock, cpu_clock=lambda: clocks.wall)
    try:
        for _ in range(100):
            assert await reads.rows(LOOKUP, {"name": "a"}) is not None
    finally:
        reads.close()
        engine.dispose()


async def test_time_lost_to_other_processes_keeps_lookups_in_place(tmp_path: Path) -> None:
    path = tmp_path / "meta.db"
    _make_database(path)
    engine = create_engine(f"sqlite:///{path}")
    clocks = _Clocks(engine, lookup_s=4 * SLOW_WAIT_S)
    # Off the CPU but nothing read from a disk: another process held the core (a busy
    # machine), or another thread the GIL.
    reads = InlineReads(engine, clock=clocks.clock, cpu_clock=lambda: 0.0, disk_reads=lambda: 7)
    try:
        for _ in range(100):
            assert await reads.rows(LOOKUP, {"name": "a"}) is not None
    finally:
        reads.close()
        engine.dispose()


def test_a_read_that_skips_the_page_cache_counts_as_a_disk_read(tmp_path: Path) -> None:
    path = tmp_path / "data.bin"
    with path.open("wb") as file:
        file.write(os.urandom(1 << 16))
        file.flush()
        os.fsync(file.fileno())
    buffer = mmap.mmap(-1, 1 << 16)  # O_DIRECT wants an aligned buffer: a mapping is
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    except OSError:
        pytest.skip("this filesystem has no O_DIRECT")
    try:
        before = disk_reads()
        assert os.readv(fd, [buffer]) == 1 << 16
        assert disk_reads() > before
        # A read the page cache answers is none.
        path.read_bytes()
        cached = disk_reads()
        path.read_bytes()
        assert disk_reads() == cached
    finally:
        os.close(fd)
        buffer.close()
