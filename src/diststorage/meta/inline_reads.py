"""SQLite point lookups run in place on the event loop, while they stay fast.

Handing a lookup to a reader thread costs more than the lookup itself: with 4 KiB GETs at
concurrency 16 the hop (a future, a thread wake-up, the GIL passed back and forth) held the
gateway to 1,750–1,950 answers a second, against 2,900–3,000 with the lookup run in place.
In place it blocks the event loop, which is fine for a lookup served from the page cache
(about 25 µs) and not for one that waits on a lock or on a slow disk. So this connection
never waits for a lock: a locked database sends the lookup to a reader thread, which waits
there. And when lookups spend on average more than ``SLOW_WAIT_S`` off the CPU (reading a
disk, most likely), they go to the reader threads for ``THREADS_FOR_S``. Time on the CPU
(compiling a statement the first time, say) does not count: a thread would spend it too. Nor
does time off the CPU during which the thread read nothing from a disk (``disk_reads``, the
kernel's count of the thread's block reads: a page-cache hit is none): that is another
process holding the core, or another thread of ours holding the GIL after SQLite let it go,
which on a busy machine is most of the off-CPU time; a reader thread would lose it too, and
the hop on top. Counted as waiting, it sent nearly every lookup to the threads whenever the
machine was loaded (4 KiB GETs at concurrency 16 beside their own client on 2 cores).
"""

from __future__ import annotations

import asyncio
import resource
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Executable
from sqlalchemy.exc import OperationalError

from diststorage.meta.sqlite_lookups import CompiledLookup, compile_lookup

_UNSEEN = object()

SLOW_WAIT_S = 0.0005
THREADS_FOR_S = 10.0
# Weight of the newest lookup in the running mean: one lookup that lost the CPU to another
# process for a few milliseconds does not move it past the limit alone.
WAIT_WEIGHT = 0.05


def disk_reads() -> int:
    """How many reads from a disk this thread has waited for so far (not page-cache hits)."""
    return resource.getrusage(resource.RUSAGE_THREAD).ru_inblock


def _is_locked(error: Exception) -> bool:
    code = getattr(getattr(error, "orig", error), "sqlite_errorcode", None)
    # The driver reports extended codes (SQLITE_BUSY_RECOVERY...); the low byte is the kind.
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class InlineReads:
    """The event loop's own autocommit connection, used while lookups on it stay fast."""

    def __init__(
        self,
        engine: Engine,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.thread_time,
        disk_reads: Callable[[], int] = disk_reads,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._cpu_clock = cpu_clock
        self._disk_reads = disk_reads
        self._connection: Connection | None = None
        self._driver: sqlite3.Connection | None = None
        self._compiled: dict[Executable, CompiledLookup | None] = {}
        self._mean_wait_s = 0.0
        self._threads_until = 0.0

    async def rows(self, statement: Executable, params: Mapping[str, Any]) -> Sequence[Any] | None:
        """The statement's rows, or None when it is to run in a reader thread instead."""
        if self._connection is None:
            # Opening runs the connection's set-up, which may wait on a lock: not here.
            self._connection = await asyncio.get_running_loop().run_in_executor(None, self._connect)
            self._driver = self._connection.connection.driver_connection
        started = self._clock()
        if started < self._threads_until:
            return None
        cpu_started = self._cpu_clock()
        reads_started = self._disk_reads()
        try:
            rows = self._run(self._connection, statement, params)
        except (OperationalError, sqlite3.OperationalError) as error:
            if not _is_locked(error):
                raise
            return None
        finished = self._clock()
        waited = 0.0
        if self._disk_reads() != reads_started:
            waited = (finished - started) - (self._cpu_clock() - cpu_started)
        self._mean_wait_s += WAIT_WEIGHT * (waited - self._mean_wait_s)
        if self._mean_wait_s > SLOW_WAIT_S:
            self._threads_until = finished + THREADS_FOR_S
            self._mean_wait_s = 0.0
        return rows

    def _run(
        self, connection: Connection, statement: Executable, params: Mapping[str, Any]
    ) -> Sequence[Any]:
        lookup = self._compiled.get(statement, _UNSEEN)
        if lookup is _UNSEEN:
            lookup = self._compiled[statement] = compile_lookup(statement, self._engine.dialect)
        if lookup is None or self._driver is None:
            return connection.execute(statement, params).all()
        assert isinstance(lookup, CompiledLookup)
        return lookup.rows(self._driver, params)

    def _connect(self) -> Connection:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("PRAGMA busy_timeout=0")
        return connection

    def close(self) -> None:
        if self._connection is not None:
            # Not back into the pool: nobody else may get a connection that never waits.
            self._connection.invalidate()
            self._connection.close()
            self._connection = None
            self._driver = None
