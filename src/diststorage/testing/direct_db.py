"""A metadata database reached directly, beside its store: bulk rows and query plans.

The listing tests and the listing benchmark both need a million-ish committed keys in
seconds (the upload path would take minutes) and the plans the backend picks for the store's
own statements; this is the one place that knows the ``objects`` columns and both dialects'
ways to do it.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event

from diststorage.meta import MetadataStore

OBJECT_COLUMNS = (
    "id",
    "namespace_id",
    "key",
    "state",
    "size_bytes",
    "md5_hex",
    "content_type",
    "policy",
    "stripe_size_bytes",
    "segment_stripes",
    "gateway_id",
    "created_at",
    "committed_at",
    "part_count",
)
INSERT_BATCH = 50_000
# How SQLAlchemy writes a DateTime to SQLite; PostgreSQL takes the datetime itself.
_SQLITE_STAMP = "2026-01-01 00:00:00.000000"
_PG_STAMP = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class DirectDatabase:
    """One of ``sqlite_path`` (a SQLite file) or ``pg_url`` (an asyncpg URL)."""

    sqlite_path: Path | None = None
    pg_url: str | None = None

    async def insert_committed(self, keys: Iterable[str], namespace_id: int = 1) -> None:
        """Committed inline-sized rows under the keys, in bulk statements of INSERT_BATCH."""
        stamp: Any = _SQLITE_STAMP if self.sqlite_path is not None else _PG_STAMP
        fixed = ("committed", 0, "d" * 32, "text/plain", "inline", 4096, 8, "g", stamp, stamp, 0)
        rows = ((f"{i:032x}", namespace_id, k.encode(), *fixed) for i, k in enumerate(keys))
        if self.sqlite_path is not None:
            _sqlite_insert(self.sqlite_path, rows)
            return
        connection = await asyncpg.connect(self.pg_url)
        try:
            for batch in _batches(rows):
                await connection.copy_records_to_table(
                    "objects", records=batch, columns=list(OBJECT_COLUMNS)
                )
            await connection.execute("ANALYZE objects")
        finally:
            await connection.close()

    async def plans(self, statements: Sequence[tuple[str, Any]]) -> list[str]:
        """Each statement's query plan, as the backend would run it: on PostgreSQL the generic
        plan, which the driver's prepared statements get after a few runs."""
        if self.sqlite_path is not None:
            connection = sqlite3.connect(self.sqlite_path)
            try:
                return [
                    " / ".join(row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {s}", p))
                    for s, p in statements
                ]
            finally:
                connection.close()
        connection = await asyncpg.connect(self.pg_url)
        try:
            await connection.execute("SET plan_cache_mode = force_generic_plan")
            plans = []
            for number, (statement, parameters) in enumerate(statements):
                await connection.execute(f"PREPARE listing{number} AS {statement}")
                arguments = ", ".join(_sql_literal(value) for value in parameters)
                rows = await connection.fetch(f"EXPLAIN EXECUTE listing{number}({arguments})")
                plans.append(" / ".join(row[0].strip() for row in rows))
            return plans
        finally:
            await connection.close()


def _sqlite_insert(path: Path, rows: Iterator[tuple[Any, ...]]) -> None:
    connection = sqlite3.connect(path)
    placeholders = ", ".join("?" for _ in OBJECT_COLUMNS)
    try:
        with connection:
            for batch in _batches(rows):
                connection.executemany(
                    f"INSERT INTO objects ({', '.join(OBJECT_COLUMNS)}) VALUES ({placeholders})",
                    batch,
                )
            connection.execute("ANALYZE")
    finally:
        connection.close()


def _batches(items: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for item in items:
        batch.append(item)
        if len(batch) == INSERT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _sql_literal(value: object) -> str:
    if isinstance(value, bytes):
        return f"'\\x{value.hex()}'::bytea"
    assert isinstance(value, int), value
    return str(value)


@contextlib.contextmanager
def recorded_object_reads(store: MetadataStore) -> Iterator[list[tuple[str, Any]]]:
    """The SELECTs on the objects table the store sends while the block runs, as the driver
    got them (statement, parameters): what a listing's cost is counted in."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM objects" in statement:
            sent.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(store.engine, "before_cursor_execute", record)
