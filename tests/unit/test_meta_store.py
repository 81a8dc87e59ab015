"""The metadata contract: the same suite against SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from conftest import PG_ADMIN, md5_hex
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from diststorage.core.clock import utc_now
from diststorage.core.errors import AlreadyExists, ObjectNotFound
from diststorage.core.ids import new_id
from diststorage.core.policy import INLINE_POLICY
from diststorage.meta import MetadataStore, NewObject, PlannedChunk, StoredChunk
from diststorage.meta.base import IS_COMMITTED
from diststorage.meta.models import INLINE_BODIES, ObjectRow
from diststorage.testing import FakeClock


def _new(key: str) -> NewObject:
    return NewObject(new_id(), "default", key, "text/plain", "ec:4+2", 4096, 8, new_id())


async def _put(store: MetadataStore, key: str, replace: bool = True, size: int = 3) -> str:
    new = _new(key)
    planned = PlannedChunk(new_id(), new_id(), 0, 0)
    await store.begin_upload(new, [planned])
    stored = StoredChunk(planned.chunk_id, planned.node_id, 0, 0, 7, (1, 2**32 - 1))
    await store.commit_upload(new.object_id, size, "a" * 32, [stored], replace)
    return new.object_id


async def test_commit_makes_visible_with_layout(store: MetadataStore) -> None:
    new = _new("k")
    await store.begin_upload(new, [PlannedChunk(new_id(), "n1", 0, 0)])
    assert not await store.key_exists("default", "k")
    with pytest.raises(ObjectNotFound):
        await store.get_info("default", "k")
    await _put(store, "k2")
    layout = await store.get_layout("default", "k2")
    assert layout.info.size_bytes == 3
    assert layout.chunks[0].block_crcs == (1, 2**32 - 1)


async def test_empty_object_has_no_chunks_and_commit_reports_what_is_stored(
    store: MetadataStore,
) -> None:
    new = _new("empty")
    await store.begin_upload(new, [])
    outcome = await store.commit_upload(new.object_id, 0, "d" * 32, [], replace=False)
    layout = await store.get_layout("default", "empty")
    assert layout.chunks == ()
    assert layout.info == outcome.info == await store.get_info("default", "empty")


async def test_create_conflicts_and_replace_returns_garbage(store: MetadataStore) -> None:
    first = await _put(store, "k")
    with pytest.raises(AlreadyExists):
        await _put(store, "k", replace=False)
    old_chunks = (await store.get_layout("default", "k")).chunks
    second = await _put(store, "k", replace=True, size=9)
    assert second != first
    assert (await store.get_info("default", "k")).size_bytes == 9
    garbage = {ref.chunk_id for ref in await store.list_garbage(100)}
    assert {c.chunk_id for c in old_chunks} <= garbage
    assert await store.list_garbage(100, queued_before=datetime(2000, 1, 1, tzinfo=UTC)) == []


async def test_abort_leaves_nothing(store: MetadataStore) -> None:
    new = _new("gone")
    planned = PlannedChunk(new_id(), "n1", 0, 0)
    await store.begin_upload(new, [planned])
    await store.abort_upload(new.object_id, [])
    assert not await store.key_exists("default", "gone")
    await _put(store, "gone")  # the key is free again
    assert await store.list_garbage(10) == []


async def test_delete_queues_garbage(store: MetadataStore) -> None:
    await _put(store, "d")
    deleted = await store.delete_object("default", "d")
    refs = deleted.chunks
    assert len(refs) == 1
    with pytest.raises(ObjectNotFound):
        await store.delete_object("default", "d")
    await store.forget_garbage([r.chunk_id for r in refs])
    assert await store.list_garbage(10) == []


async def test_listing_is_byte_ordered_and_paginates(store: MetadataStore) -> None:
    keys = ["a", "a/b", "a/c", "ab", "b", "é", "a\xff", "z z"]
    for key in keys:
        await _put(store, key)
    page = await store.list_objects("default", "a", "", 2)
    assert [o.key for o in page.objects] == ["a", "a/b"] and page.truncated
    page = await store.list_objects("default", "a", "a/b", 1000)
    assert [o.key for o in page.objects] == ["a/c", "ab", "a\xff"]
    everything = await store.list_objects("default", "", "", 1000)
    assert [o.key for o in everything.objects] == sorted(keys, key=lambda k: k.encode())


async def _put_inline(store: MetadataStore, key: str, body: bytes, replace: bool = True) -> str:
    new = dataclasses.replace(_new(key), policy=INLINE_POLICY)
    outcome = await store.commit_inline(new, body, md5_hex(body), replace)
    assert outcome.info == await store.get_info("default", key)
    return new.object_id


async def test_an_inline_object_commits_whole_with_its_bytes(store: MetadataStore) -> None:
    await _put_inline(store, "small", b"tiny body")
    layout = await store.get_layout("default", "small")
    assert (layout.inline_body, layout.chunks) == (b"tiny body", ())
    assert (layout.info.size_bytes, layout.info.policy) == (9, INLINE_POLICY)
    assert layout.info.md5_hex == md5_hex(b"tiny body")
    await _put_inline(store, "empty", b"")
    assert (await store.get_layout("default", "empty")).inline_body == b""
    # Objects on nodes carry no inline body.
    await _put(store, "on-nodes")
    assert (await store.get_layout("default", "on-nodes")).inline_body is None


async def test_inline_and_chunked_versions_replace_each_other(store: MetadataStore) -> None:
    await _put(store, "k")
    chunks = (await store.get_layout("default", "k")).chunks
    with pytest.raises(AlreadyExists):
        await _put_inline(store, "k", b"new", replace=False)
    inline_id = await _put_inline(store, "k", b"new")
    garbage = {ref.chunk_id for ref in await store.list_garbage(100)}
    assert {c.chunk_id for c in chunks} <= garbage
    await _put(store, "k")
    layout = await store.get_layout("default", "k")
    assert layout.inline_body is None and len(layout.chunks) == 1
    # The replaced inline version left no body behind.
    assert await _inline_rows(store, inline_id) == 0


async def test_deleting_an_inline_object_removes_its_bytes(store: MetadataStore) -> None:
    object_id = await _put_inline(store, "d", b"bytes")
    deleted = await store.delete_object("default", "d")
    assert deleted.chunks == ()
    assert await _inline_rows(store, object_id) == 0
    with pytest.raises(ObjectNotFound):
        await store.get_layout("default", "d")


async def test_racing_inline_creates_one_wins(store: MetadataStore) -> None:
    results = await asyncio.gather(
        *(_put_inline(store, "race", b"x", replace=False) for _ in range(5)),
        return_exceptions=True,
    )
    assert sum(1 for r in results if isinstance(r, str)) == 1
    assert sum(1 for r in results if isinstance(r, AlreadyExists)) == 4


async def test_lookups_see_every_commit_at_once(store: MetadataStore) -> None:
    """Lookups run outside any transaction on connections kept open: none may go on seeing
    the snapshot it first read."""
    await _put_inline(store, "fresh", b"one")
    for version in (b"two", b"three"):
        # Enough concurrent lookups to take every reader connection before the change.
        await asyncio.gather(*(store.get_layout("default", "fresh") for _ in range(32)))
        await _put_inline(store, "fresh", version)
        seen = await asyncio.gather(*(store.get_layout("default", "fresh") for _ in range(32)))
        assert {layout.inline_body for layout in seen} == {version}
    await store.delete_object("default", "fresh")
    assert not await store.key_exists("default", "fresh")
    with pytest.raises(ObjectNotFound):
        await store.get_info("default", "fresh")


async def _inline_rows(store: MetadataStore, object_id: str) -> int:
    query = select(func.count()).where(INLINE_BODIES.c.object_id == object_id)
    count = await store._read(lambda session: session.scalar(query))
    assert count is not None
    return int(count)


async def test_racing_creates_one_wins(store: MetadataStore) -> None:
    results = await asyncio.gather(
        *(_put(store, "race", replace=False) for _ in range(5)), return_exceptions=True
    )
    assert sum(1 for r in results if isinstance(r, str)) == 1
    assert sum(1 for r in results if isinstance(r, AlreadyExists)) == 4


async def test_postgres_lookups_use_the_index_under_generic_plans() -> None:
    """asyncpg's prepared statements get generic plans; a bound state would scan the table."""
    name = f"diststorage_test_{new_id()[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        store = await MetadataStore.open(f"postgresql://postgres@127.0.0.1:5432/{name}", 10)
        await store.close()
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}")
        try:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            lookup = select(ObjectRow.id).where(
                ObjectRow.namespace_id == 1, ObjectRow.key == b"k", IS_COMMITTED
            )
            compiled = lookup.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
            params = [compiled.params[name] for name in compiled.positiontup or ()]
            # PREPARE/EXECUTE, so that the plan cache (and so the generic plan) is in play.
            await conn.execute(f"PREPARE lookup AS {compiled}")
            arguments = ", ".join(_sql_literal(value) for value in params)
            plan = await conn.fetch(f"EXPLAIN EXECUTE lookup({arguments})")
            assert "uq_objects_committed_key" in " ".join(row[0] for row in plan), plan
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _sql_literal(value: object) -> str:
    if isinstance(value, bytes):
        return f"'\\x{value.hex()}'::bytea"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


async def test_rows_are_stamped_with_the_stores_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await MetadataStore.open(f"sqlite:///{tmp_path / 'm.db'}", 10, clock=clock)
    try:
        await _put(store, "k")
        created = utc_now(clock)
        assert (await store.get_info("default", "k")).created_at == created
        clock.now += 60
        await store.delete_object("default", "k")
        deleted = utc_now(clock)
        assert await store.list_garbage(10, queued_before=deleted) == []
        assert len(await store.list_garbage(10, queued_before=deleted + timedelta(seconds=1))) == 1
    finally:
        await store.close()
