"""The benchmark's own databases: a SQLite file in the run's temporary folder, or a PostgreSQL
database created for the run and dropped at its end, whatever happens.

Besides the URL the store opens, each tells its size on disk and the query plans of the
store's lookup and listing statements (written out here by hand, as the store sends them), so
a slow figure at scale can be explained.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import mmap
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import asyncpg

from bench.common.postgres import PG_CONNECT_TIMEOUT_S, ScratchDatabase, scratch_database

NAMESPACE_ID = 1  # the default namespace, created by the first migration

# The store's statements (store.py: _COMMITTED_INFO, _LAYOUT, list_objects), in each dialect's
# parameter style. The committed state is a literal there too (see base.IS_COMMITTED).
_INFO = "objects.id, objects.key, objects.size_bytes, objects.md5_hex, objects.content_type, "
_INFO += "objects.policy, objects.stripe_size_bytes, objects.segment_stripes, "
_INFO += "objects.created_at, objects.committed_at"
_BY_KEY = f"objects.namespace_id = {NAMESPACE_ID} AND objects.key = {{p1}} "
_BY_KEY += "AND objects.state = 'committed'"
_STATEMENTS = {
    "lookup": f"SELECT {_INFO} FROM objects WHERE {_BY_KEY}",
    "layout": f"SELECT {_INFO}, chunks.id AS chunk_id, chunks.node_id, chunks.segment_index, "
    "chunks.shard_index, chunks.size_bytes AS chunk_size_bytes, chunks.block_crcs, "
    "chunks.state AS chunk_state FROM objects LEFT OUTER JOIN chunks "
    f"ON chunks.object_id = objects.id WHERE {_BY_KEY} "
    "ORDER BY chunks.segment_index, chunks.shard_index",
    "list after": f"SELECT {_INFO} FROM objects WHERE objects.namespace_id = {NAMESPACE_ID} "
    "AND objects.state = 'committed' AND objects.key > {p1} ORDER BY objects.key LIMIT 1001",
    "list prefix": f"SELECT {_INFO} FROM objects WHERE objects.namespace_id = {NAMESPACE_ID} "
    "AND objects.state = 'committed' AND objects.key >= {p1} AND objects.key < {p2} "
    "ORDER BY objects.key LIMIT 1001",
}


@dataclass(frozen=True)
class PlanInputs:
    key: bytes
    after: bytes
    prefix: bytes
    prefix_end: bytes

    def params(self, statement: str) -> tuple[bytes | str, ...]:
        table: dict[str, tuple[bytes | str, ...]] = {
            "lookup": (self.key,),
            "layout": (self.key,),
            "list after": (self.after,),
            "list prefix": (self.prefix, self.prefix_end),
        }
        return table[statement]


class BenchDatabase(Protocol):
    backend: str
    url: str

    async def size_bytes(self) -> int: ...

    async def settle(self) -> float | None:
        """Brings the database to the state a long-running one is in before a measurement.
        Returns the share of the database's files that was in memory before, where it is
        known (SQLite), in %."""
        ...

    async def plans(self, inputs: PlanInputs) -> dict[str, str]:
        """Each statement's plan, as the database prints it."""
        ...


READ_BLOCK_BYTES = 4 << 20
_libc = ctypes.CDLL(None, use_errno=True)


def _resident_bytes(path: Path) -> int:
    """Bytes of ``path`` in the page cache, from mincore(2) on a mapping of the file."""
    size = path.stat().st_size
    page = mmap.PAGESIZE
    vector = (ctypes.c_ubyte * -(-size // page))()
    # A private mapping, since ctypes takes the address of writable buffers only; it is never
    # written, so every page still reports the page cache's state.
    with path.open("rb") as file, mmap.mmap(file.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        start = ctypes.c_char.from_buffer(mapped)
        try:
            failed = _libc.mincore(ctypes.byref(start), ctypes.c_size_t(size), vector)
        finally:
            del start  # the mapping cannot close while ctypes holds its buffer
    if failed:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    # The last page counts whole; the file may end inside it.
    return min(sum(b & 1 for b in bytes(vector)) * page, size)


class SqliteDatabase:
    backend = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.url = f"sqlite:///{path}"

    def _files(self) -> list[Path]:
        return [self.path.with_name(self.path.name + suffix) for suffix in ("", "-wal", "-shm")]

    async def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self._files() if f.exists())

    async def settle(self) -> float | None:
        """Reads the files through once, as PostgreSQL's VACUUM reads its tables: a gateway
        that has run a while has its metadata in the page cache. A freshly written file may
        not, where the host takes back page cache it thinks cold (this machine does, with
        DAMON reclaim), and then a lookup's p99 is a disk read. The share resident before is
        returned, so the report shows which state the file was found in."""
        return await asyncio.to_thread(self._settle_sync)

    def _settle_sync(self) -> float:
        files = [f for f in self._files() if f.exists() and f.stat().st_size > 0]
        total = sum(f.stat().st_size for f in files)
        resident = sum(_resident_bytes(f) for f in files)
        for file in files:
            with file.open("rb", buffering=0) as reader:
                while reader.read(READ_BLOCK_BYTES):
                    pass
        return 100.0 * resident / total if total else 100.0

    async def plans(self, inputs: PlanInputs) -> dict[str, str]:
        return await asyncio.to_thread(self._plans_sync, inputs)

    def _plans_sync(self, inputs: PlanInputs) -> dict[str, str]:
        connection = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        try:
            plans: dict[str, str] = {}
            for name, template in _STATEMENTS.items():
                sql = template.format(p1="?", p2="?")
                rows = connection.execute(f"EXPLAIN QUERY PLAN {sql}", inputs.params(name))
                plans[name] = "\n".join(str(row[-1]) for row in rows)
            return plans
        finally:
            connection.close()

    def remove(self) -> None:
        for file in self._files():
            file.unlink(missing_ok=True)


class PostgresDatabase:
    backend = "postgresql"

    def __init__(self, scratch: ScratchDatabase) -> None:
        self._admin = scratch.admin
        self.name = scratch.name
        self.url = scratch.url

    async def size_bytes(self) -> int:
        size: int = await self._admin.fetchval("SELECT pg_database_size($1)", self.name)
        return size

    async def settle(self) -> float | None:
        """VACUUM (ANALYZE), as autovacuum does some time after a bulk load: without it, whether
        autovacuum happens to run during the measurement decides the figures."""
        connection = await asyncpg.connect(self.url, timeout=PG_CONNECT_TIMEOUT_S)
        try:
            await connection.execute("VACUUM (ANALYZE)")
        finally:
            await connection.close()
        return None

    async def plans(self, inputs: PlanInputs) -> dict[str, str]:
        """Plans of prepared statements forced generic, as asyncpg's prepared statements get
        after their first runs, with the run's timings and buffer counts."""
        connection = await asyncpg.connect(self.url, timeout=PG_CONNECT_TIMEOUT_S)
        try:
            await connection.execute("SET plan_cache_mode = force_generic_plan")
            plans: dict[str, str] = {}
            for number, (name, template) in enumerate(_STATEMENTS.items()):
                params = inputs.params(name)
                types = ", ".join("text" if isinstance(p, str) else "bytea" for p in params)
                sql = template.format(p1="$1", p2="$2")
                await connection.execute(f"PREPARE q{number} ({types}) AS {sql}")
                values = ", ".join(
                    f"'{p}'" if isinstance(p, str) else f"decode('{p.hex()}', 'hex')"
                    for p in params
                )
                rows = await connection.fetch(
                    f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE q{number} ({values})"
                )
                plans[name] = "\n".join(row[0] for row in rows)
            return plans
        finally:
            await connection.close()


@contextlib.asynccontextmanager
async def sqlite_database(folder: Path) -> AsyncIterator[SqliteDatabase]:
    database = SqliteDatabase(folder / "meta.db")
    try:
        yield database
    finally:
        database.remove()


@contextlib.asynccontextmanager
async def postgres_database(admin_url: str) -> AsyncIterator[PostgresDatabase]:
    """A new, empty database (``scratch_database``), dropped on the way out."""
    async with scratch_database(admin_url) as scratch:
        yield PostgresDatabase(scratch)
