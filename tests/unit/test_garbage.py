"""The janitor and the garbage collector on a real SQLite store and one virtual clock: queued
garbage is swept only once it is old enough, garbage of forgotten nodes is dropped, background
deletions have one owner that ends them on close, and abandoned uploads are collected after
the grace."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from diststorage.core.clock import utc_now
from diststorage.core.ids import new_id
from diststorage.gateway.inventory import Inventory
from diststorage.gateway.janitor import SWEEP_AGE_S, Janitor
from diststorage.gateway.nodeclient import NodeClients
from diststorage.gateway.readers import ActiveReads
from diststorage.gateway.workers.collector import GarbageCollector
from diststorage.meta import ChunkRef, MetadataStore, NewObject, PlannedChunk, StoredChunk
from diststorage.testing import FakeClock

GC_GRACE_S = 300.0


@dataclass
class Parts:
    clock: FakeClock
    store: MetadataStore
    janitor: Janitor
    collector: GarbageCollector


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    clock = FakeClock()
    store = await MetadataStore.open(f"sqlite:///{tmp_path / 'm.db'}", 5.0, clock=clock)
    inventory = Inventory(store, 10.0, clock=clock)
    clients = await NodeClients.open(inventory.address_of, 1.0, 1.0, 1 << 20)
    janitor = await Janitor.open(store, inventory, clients, ActiveReads(), clock)
    collector = GarbageCollector(
        GC_GRACE_S,
        store.maintenance,
        inventory,
        clients,
        janitor,
        active_uploads=list,
        spared_chunks=frozenset,
        clock=clock,
    )
    try:
        yield Parts(clock, store, janitor, collector)
    finally:
        await janitor.close()
        await clients.close()
        await store.close()


async def pending_upload(store: MetadataStore) -> tuple[NewObject, PlannedChunk]:
    new = NewObject(new_id(), "default", "k", "text/plain", "ec:4+2", 4096, 8, new_id())
    planned = PlannedChunk(new_id(), new_id(), 0, 0)
    await store.begin_upload(new, [planned])
    return new, planned


async def discarded_chunk(store: MetadataStore) -> ChunkRef:
    """A chunk of an object deleted just now, on a node no gateway has heard of."""
    new, planned = await pending_upload(store)
    stored = StoredChunk(planned.chunk_id, planned.node_id, 0, 0, 7, (1,))
    await store.commit_upload(new.object_id, 3, "a" * 32, [stored], replace=False)
    await store.delete_object("default", "k")
    return ChunkRef(planned.chunk_id, planned.node_id)


async def test_fresh_garbage_waits_and_a_forgotten_nodes_garbage_is_dropped(
    parts: Parts,
) -> None:
    ref = await discarded_chunk(parts.store)
    parts.clock.now += SWEEP_AGE_S - 1  # still fresh: delete_soon may be at it
    assert await parts.janitor.sweep() == 0
    assert await parts.store.list_garbage(10) == [ref]
    parts.clock.now += 2
    assert await parts.janitor.sweep() == 0  # nothing deleted: the node is unknown...
    assert await parts.store.list_garbage(10) == []  # ...so its garbage is forgotten


async def test_garbage_is_queued_at_the_stores_clock(parts: Parts) -> None:
    await discarded_chunk(parts.store)
    queued = utc_now(parts.clock)
    assert await parts.store.list_garbage(10, queued_before=queued) == []
    later = queued + timedelta(seconds=1)
    assert len(await parts.store.list_garbage(10, queued_before=later)) == 1


async def test_background_deletions_end_on_close_and_none_start_after(parts: Parts) -> None:
    ref = await discarded_chunk(parts.store)
    parts.janitor.delete_soon([ref])  # the node is unknown: the chunk stays queued
    assert parts.janitor.deletions_running == 1
    await asyncio.sleep(0)  # under way
    await parts.janitor.close()
    assert parts.janitor.deletions_running == 0
    parts.janitor.delete_soon([ref])  # closed: left to a later sweep, no error
    assert await parts.store.list_garbage(10) == [ref]


async def test_an_abandoned_upload_is_collected_after_the_grace(parts: Parts) -> None:
    _, planned = await pending_upload(parts.store)
    parts.clock.now += GC_GRACE_S - 1
    await parts.collector.work()
    assert parts.collector.uploads_collected == 0
    parts.clock.now += 2
    await parts.collector.work()
    assert parts.collector.uploads_collected == 1
    assert await parts.store.list_garbage(10) == [ChunkRef(planned.chunk_id, planned.node_id)]
