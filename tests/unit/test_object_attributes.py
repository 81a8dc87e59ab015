"""Attributes, checksums and conditional commits in the metadata store, on both backends."""

from __future__ import annotations

import asyncio

import pytest

from diststorage.core.errors import AlreadyExists, PreconditionFailed
from diststorage.core.ids import new_id
from diststorage.meta import (
    MetadataStore,
    NewObject,
    ObjectAttributes,
    PlannedChunk,
    StoredChecksum,
    StoredChunk,
)

ATTRS = ObjectAttributes(
    user_meta=(("colour", "blau ü"), ("a", "1")),
    headers=(("Content-Encoding", "gzip"), ("Cache-Control", "no-cache")),
)
CRC = StoredChecksum("CRC32", "FULL_OBJECT", "AAAAAA==")


def _new(key: str, attrs: ObjectAttributes = ATTRS) -> NewObject:
    return NewObject(new_id(), "default", key, "text/plain", "ec:4+2", 4096, 8, new_id(), attrs)


async def _upload(
    store: MetadataStore, key: str, md5: str, if_match: str | None = None, replace: bool = True
) -> str:
    new = _new(key)
    planned = PlannedChunk(new_id(), new_id(), 0, 0)
    await store.begin_upload(new, [planned])
    stored = StoredChunk(planned.chunk_id, planned.node_id, 0, 0, 7, (1,))
    outcome = await store.commit_upload(
        new.object_id, 3, md5, [stored], replace, checksum=CRC, if_match=if_match
    )
    return outcome.info.etag


async def test_attributes_and_checksum_come_back_from_every_lookup(store: MetadataStore) -> None:
    await _upload(store, "chunked", "a" * 32)
    await store.commit_inline(_new("inline"), b"abc", "b" * 32, False, checksum=CRC)
    for key in ("chunked", "inline"):
        info = await store.get_info("default", key)
        layout = await store.get_layout("default", key)
        page = await store.list_objects("default", prefix=key)
        for found in (info, layout.info, page.objects[0]):
            assert found.attrs == ATTRS
            assert found.checksum == CRC
            assert found.part_count == 0


async def test_an_object_without_attributes_stores_none(store: MetadataStore) -> None:
    await store.commit_inline(_new("plain", ObjectAttributes()), b"x", "c" * 32, False)
    info = await store.get_info("default", "plain")
    assert info.attrs == ObjectAttributes()
    assert info.checksum is None
    assert info.etag == "c" * 32


async def test_if_match_commits_only_over_that_etag(store: MetadataStore) -> None:
    with pytest.raises(PreconditionFailed):
        await _upload(store, "k", "a" * 32, if_match="*")
    await _upload(store, "k", "a" * 32)
    with pytest.raises(PreconditionFailed):
        await _upload(store, "k", "b" * 32, if_match="f" * 32)
    assert await _upload(store, "k", "b" * 32, if_match="a" * 32) == "b" * 32
    assert await _upload(store, "k", "c" * 32, if_match="*") == "c" * 32
    with pytest.raises(PreconditionFailed):
        await store.commit_inline(_new("k"), b"x", "d" * 32, True, if_match="a" * 32)
    assert (await store.get_info("default", "k")).md5_hex == "c" * 32


async def test_racing_conditional_commits_have_one_winner(store: MetadataStore) -> None:
    await _upload(store, "race", "0" * 32)

    async def attempt(digit: str) -> str | None:
        try:
            return await _upload(store, "race", digit * 32, if_match="0" * 32)
        except PreconditionFailed:
            return None

    results = await asyncio.gather(*(attempt(d) for d in "123456"))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert (await store.get_info("default", "race")).md5_hex == winners[0]


async def test_racing_creates_have_one_winner(store: MetadataStore) -> None:
    async def attempt(digit: str) -> str | None:
        try:
            return await _upload(store, "fresh", digit * 32, replace=False)
        except AlreadyExists:
            return None

    results = await asyncio.gather(*(attempt(d) for d in "123456"))
    assert len([r for r in results if r is not None]) == 1
