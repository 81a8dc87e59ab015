"""Reads ride out a database that dropped its connections or is briefly out of reach (a
PostgreSQL restart or failover); statements it refuses are not retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
from conftest import PG_ADMIN
from sqlalchemy.exc import DBAPIError, ProgrammingError

from diststorage.core.errors import Unavailable
from diststorage.core.ids import new_id
from diststorage.meta import MetadataStore, NewObject, PlannedChunk, StoredChunk
from diststorage.meta.base import is_lost_connection, retrying_lost_connections
from diststorage.testing.private_postgres import private_postgres


@pytest.fixture
async def pg_database() -> AsyncIterator[str]:
    name = f"diststorage_test_{new_id()[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _put(store: MetadataStore, key: str) -> None:
    new = NewObject(new_id(), "default", key, "text/plain", "ec:4+2", 4096, 8, new_id())
    planned = PlannedChunk(new_id(), new_id(), 0, 0)
    await store.begin_upload(new, [planned])
    stored = StoredChunk(planned.chunk_id, planned.node_id, 0, 0, 7, (1, 2**32 - 1))
    await store.commit_upload(new.object_id, 3, "a" * 32, [stored], replace=True)


async def _drop_connections(database: str) -> int:
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        return int(
            await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1",
                database,
            )
        )
    finally:
        await admin.close()


async def test_reads_after_the_database_dropped_every_connection(pg_database: str) -> None:
    store = await MetadataStore.open(
        f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_database}", 10
    )
    try:
        await _put(store, "k")
        # Several lookups at once, so the pool holds several connections to drop.
        await asyncio.gather(*(store.get_info("default", "k") for _ in range(4)))
        assert await _drop_connections(pg_database) >= 1
        infos = await asyncio.gather(*(store.get_info("default", "k") for _ in range(4)))
        assert {info.size_bytes for info in infos} == {3}
        assert await store.key_exists("default", "k")
    finally:
        await store.close()


async def test_a_read_is_tried_again_until_the_database_answers() -> None:
    answers: list[BaseException | str] = [ConnectionRefusedError(), ConnectionRefusedError(), "ok"]

    async def read() -> str:
        answer = answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    assert await retrying_lost_connections(read) == "ok"
    assert answers == []


async def test_a_refused_statement_is_not_tried_again() -> None:
    calls = 0

    async def read() -> str:
        nonlocal calls
        calls += 1
        raise ProgrammingError("SELECT nothing", {}, Exception("syntax error"))

    with pytest.raises(ProgrammingError):
        await retrying_lost_connections(read)
    assert calls == 1


async def test_a_database_that_stays_away_costs_the_deadline_then_unavailable() -> None:
    # Nothing listens on port 1: every connection attempt is refused at once.
    store = await MetadataStore.open("postgresql://postgres@127.0.0.1:1/none", 0.5, migrate=False)
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises(Unavailable, match="in time"):
            await store.key_exists("default", "k")
        assert asyncio.get_running_loop().time() - started >= 0.5
    finally:
        await store.close()


def test_lost_connections_are_told_from_refused_statements() -> None:
    invalidated = DBAPIError("SELECT 1", {}, Exception("gone"), connection_invalidated=True)
    assert is_lost_connection(ConnectionRefusedError())
    assert is_lost_connection(invalidated)
    assert not is_lost_connection(ProgrammingError("SELECT x", {}, Exception("no column x")))
    assert not is_lost_connection(ValueError())


async def test_reads_and_writes_ride_out_a_database_restart() -> None:
    """A PostgreSQL server of the test's own, stopped (fast) and started again while lookups
    and commits keep coming: every lookup answers; a commit either lands or fails with
    Unavailable (one cut off mid-flight cannot know more: the loop has one in flight, so the
    restart's one cut costs at most that one and a connection broken with it); every one that
    said it landed is there afterwards."""
    with private_postgres() as server:
        store = await MetadataStore.open(server.url, 10)
        try:
            await _put(store, "before")
            restart = asyncio.create_task(asyncio.to_thread(server.restart))
            written: list[str] = []
            failed = 0
            while not restart.done():
                key = f"during-{len(written) + failed}"
                try:
                    await _put(store, key)
                    written.append(key)
                except Unavailable:
                    failed += 1
                assert (await store.get_info("default", "before")).size_bytes == 3
            away_s = await restart
            await _put(store, "after")
            for key in ["before", *written, "after"]:
                assert await store.key_exists("default", key), key
            assert away_s > 0
            assert failed <= 2, (failed, len(written))
        finally:
            await store.close()
