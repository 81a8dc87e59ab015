"""A bucket deleted and made again through one gateway is the new bucket on every other.

Two metadata stores over one database stand for two gateways. Store A uses a bucket (any id it
could have kept is warm), store B deletes it and makes it again (S3 DeleteBucket, CreateBucket),
with another bucket made in between: on SQLite that one takes the deleted bucket's id, so an id
kept by A would put A's writes into the wrong bucket, and on PostgreSQL into a namespace that is
gone. A must write, read and list the new bucket, and B must see what A wrote there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from conftest import PG_ADMIN
from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from diststorage.core.errors import ObjectNotFound
from diststorage.core.ids import new_id
from diststorage.meta import MetadataStore, NewObject, PlannedChunk, StoredChunk
from diststorage.meta.layouts import LAYOUT
from diststorage.meta.models import Namespace
from diststorage.meta.store import _COMMITTED_INFO

Stores = tuple[MetadataStore, MetadataStore]
BUCKET, OTHER = "photos", "other"


@pytest.fixture(params=["sqlite", "postgresql"])
async def stores(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stores]:
    """Two stores over one new database of the given backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('shared') / 'm.db'}"
        async for pair in _pair(url):
            yield pair
        return
    name = f"diststorage_test_{new_id()[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        async for pair in _pair(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"):
            yield pair
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _pair(url: str) -> AsyncIterator[Stores]:
    first = await MetadataStore.open(url, 10)
    try:
        second = await MetadataStore.open(url, 10)
        try:
            yield first, second
        finally:
            await second.close()
    finally:
        await first.close()


def _new(key: str) -> NewObject:
    return NewObject(new_id(), BUCKET, key, "text/plain", "ec:4+2", 4096, 8, new_id())


async def _put_inline(store: MetadataStore, key: str, body: bytes) -> str:
    new = _new(key)
    outcome = await store.commit_inline(new, body, "b" * 32, replace=True)
    return outcome.info.object_id


async def _put_chunked(store: MetadataStore, key: str) -> str:
    new = _new(key)
    planned = PlannedChunk(new_id(), new_id(), 0, 0)
    await store.begin_upload(new, [planned])
    stored = StoredChunk(planned.chunk_id, planned.node_id, 0, 0, 7, (1, 2))
    await store.commit_upload(new.object_id, 7, "c" * 32, [stored], replace=True)
    return new.object_id


async def _namespace_id(store: MetadataStore, name: str) -> int | None:
    query = select(Namespace.id).where(Namespace.name == name)
    return await store._read(lambda session: session.scalar(query))


async def _use_everything(store: MetadataStore, key: str) -> None:
    """Every kind of lookup by bucket name, so that any id the store kept is warm."""
    assert await store.key_exists(BUCKET, key)
    await store.get_info(BUCKET, key)
    await store.get_layout(BUCKET, key)
    assert [o.key for o in (await store.list_objects(BUCKET)).objects] == [key]
    assert [o.key for o in (await store.list_keys(BUCKET, "", "", "", 10)).objects] == [key]


async def _keys_in(store: MetadataStore, bucket: str) -> list[str]:
    return [o.key for o in (await store.list_objects(bucket)).objects]


async def test_a_bucket_made_again_elsewhere_is_the_new_one_here(stores: Stores) -> None:
    a, b = stores
    await a.accounts.create_bucket(BUCKET, None)
    await _put_inline(a, "old", b"old")
    await _use_everything(a, "old")
    old_id = await _namespace_id(a, BUCKET)

    await b.delete_object(BUCKET, "old")
    await b.accounts.delete_bucket(BUCKET)
    await b.accounts.create_bucket(OTHER, None)
    await b.accounts.create_bucket(BUCKET, None)
    if a.dialect == "sqlite":
        # The case an id kept by A would get wrong the worst: it now names another bucket.
        assert await _namespace_id(b, OTHER) == old_id
    assert await _namespace_id(b, BUCKET) != old_id
    from_b = await _put_inline(b, "from-b", b"from b")

    inline = await _put_inline(a, "inline", b"inline body")
    chunked = await _put_chunked(a, "chunked")
    assert (await a.get_info(BUCKET, "from-b")).object_id == from_b
    assert (await a.get_layout(BUCKET, "inline")).inline_body == b"inline body"
    assert (await a.get_layout(BUCKET, "chunked")).info.object_id == chunked
    assert not await a.key_exists(BUCKET, "old")
    page = await a.list_keys(BUCKET, "", "", "", 10)
    assert [o.key for o in page.objects] == ["chunked", "from-b", "inline"]
    for store in (a, b):
        assert await _keys_in(store, BUCKET) == ["chunked", "from-b", "inline"]
        assert await _keys_in(store, OTHER) == [], "a write went to the bucket of the old id"
    assert (await b.get_info(BUCKET, "inline")).object_id == inline
    await a.delete_object(BUCKET, "from-b")
    assert not await b.key_exists(BUCKET, "from-b")


async def test_a_bucket_deleted_elsewhere_is_gone_here(stores: Stores) -> None:
    a, b = stores
    await a.accounts.create_bucket(BUCKET, None)
    await _put_inline(a, "k", b"k")
    await _use_everything(a, "k")
    await b.delete_object(BUCKET, "k")
    await b.accounts.delete_bucket(BUCKET)
    await b.accounts.create_bucket(OTHER, None)  # on SQLite, with the deleted bucket's id
    with pytest.raises(ObjectNotFound):
        await _put_inline(a, "k", b"k")
    with pytest.raises(ObjectNotFound):
        await a.list_objects(BUCKET)
    with pytest.raises(ObjectNotFound):
        await a.get_info(BUCKET, "k")
    assert await _keys_in(b, OTHER) == []


async def test_postgres_lookups_by_bucket_name_use_the_index_under_generic_plans() -> None:
    """The bucket's id is looked up inside the hot statements; asyncpg's prepared statements
    get generic plans, which must still find the object through the committed-key index."""
    name = f"diststorage_test_{new_id()[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        store = await MetadataStore.open(f"postgresql://postgres@127.0.0.1:5432/{name}", 10)
        await store.close()
        conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:5432/{name}")
        try:
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            for number, statement in enumerate((_COMMITTED_INFO, LAYOUT)):
                plan = await _generic_plan(conn, f"lookup{number}", statement)
                assert "uq_objects_committed_key" in plan, plan
        finally:
            await conn.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _generic_plan(conn: asyncpg.Connection, name: str, statement: Select[Any]) -> str:
    compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    # PREPARE/EXECUTE, so that the plan cache (and so the generic plan) is in play.
    await conn.execute(f"PREPARE {name} AS {compiled}")
    values = {"namespace": "'default'", "key": "'\\x6b'::bytea"}
    arguments = ", ".join(values[param] for param in compiled.positiontup or ())
    rows = await conn.fetch(f"EXPLAIN EXECUTE {name}({arguments})")
    return " ".join(row[0] for row in rows)
