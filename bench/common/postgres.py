"""A PostgreSQL database of the run's own: created empty, dropped whatever happens.

A drop that an interrupt cut short is tried again by ``drop_leftovers`` from a fresh
connection and event loop before the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg

from diststorage.core.ids import new_id

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_CONNECT_TIMEOUT_S = 10.0

# Names of the PostgreSQL databases this process created and has not dropped yet, for a last
# attempt from a fresh event loop if the normal drop was cut short.
LEFT_TO_DROP: set[str] = set()


@dataclass(frozen=True)
class ScratchDatabase:
    """A database of the run's own; ``admin`` is a connection to the server's admin database,
    open as long as the database exists."""

    admin: asyncpg.Connection
    name: str
    url: str


@contextlib.asynccontextmanager
async def scratch_database(admin_url: str) -> AsyncIterator[ScratchDatabase]:
    """A new, empty database ``diststorage_bench_<random>``, dropped (FORCE) on the way out."""
    name = f"diststorage_bench_{new_id()[:12]}"
    admin = await asyncpg.connect(admin_url, timeout=PG_CONNECT_TIMEOUT_S)
    try:
        LEFT_TO_DROP.add(name)
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield ScratchDatabase(admin, name, admin_url.rsplit("/", 1)[0] + f"/{name}")
    finally:
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            LEFT_TO_DROP.discard(name)
        finally:
            await admin.close()


def drop_leftovers(admin_url: str) -> list[str]:
    """Drops what ``scratch_database`` could not; runs its own event loop. Returns the names."""
    names = sorted(LEFT_TO_DROP)
    if not names:
        return []

    async def drop() -> None:
        admin = await asyncpg.connect(admin_url, timeout=PG_CONNECT_TIMEOUT_S)
        try:
            for name in names:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                LEFT_TO_DROP.discard(name)
        finally:
            await admin.close()

    asyncio.run(drop())
    return names
