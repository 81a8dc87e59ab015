"""Corrupt-chunk reports read back before they count, in process: real SQLite metadata, fake
nodes. A chunk that reads back whole stays sound (and is acknowledged at the next beat); one
whose bytes differ from the metadata's digests (however good its CRC), that is gone, or whose
node does not answer is marked damaged and queued; another node's chunks are acknowledged at
once and never read; the queue is bounded per node."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from diststorage.core.policy import parse_policy
from diststorage.core.settings import GatewaySettings
from diststorage.gateway import confirmations
from diststorage.gateway.confirmations import CorruptionConfirmations
from diststorage.gateway.objects import PutOperation
from diststorage.meta import DEFAULT_NAMESPACE, ChunkState, MetadataStore, StoredChunk
from diststorage.testing import BytesBody, FakeClock, Pipeline, in_memory_pipeline

STRIPE_BYTES = 4096


@pytest.fixture
async def pipeline(tmp_path: Path, sqlite_store: MetadataStore) -> Pipeline:
    settings = GatewaySettings(
        data_dir=tmp_path / "gateway",
        stripe_size_bytes=STRIPE_BYTES,
        small_object_bytes=0,
        inline_object_bytes=0,
        redundancy="ec:2+1",
    )
    return await in_memory_pipeline(settings, sqlite_store, 3, FakeClock())


async def stored_object(pipeline: Pipeline, key: str = "k") -> list[StoredChunk]:
    data = os.urandom(STRIPE_BYTES * 3 + 5)
    operation = PutOperation(
        DEFAULT_NAMESPACE, key, "application/x-test", parse_policy("ec:2+1"), len(data), True
    )
    await pipeline.writer.write(operation, BytesBody(data))
    layout = await pipeline.store.get_layout(DEFAULT_NAMESPACE, key)
    return list(layout.chunks)


async def states(pipeline: Pipeline, key: str = "k") -> dict[str, str]:
    layout = await pipeline.store.get_layout(DEFAULT_NAMESPACE, key)
    return {c.chunk_id: c.state for c in layout.chunks}


def confirmer(pipeline: Pipeline) -> CorruptionConfirmations:
    return CorruptionConfirmations(pipeline.store.maintenance, pipeline.nodes)


async def settle(confirmer: CorruptionConfirmations) -> None:
    while confirmer.status()["queued"]:
        await confirmer.work()


async def test_a_chunk_that_reads_back_whole_is_kept(pipeline: Pipeline) -> None:
    chunk = (await stored_object(pipeline))[0]
    confirm = confirmer(pipeline)
    assert await confirm.receive(chunk.node_id, [chunk.chunk_id]) == []  # read back first
    await settle(confirm)
    assert await confirm.receive(chunk.node_id, [chunk.chunk_id]) == [chunk.chunk_id]
    assert (await states(pipeline))[chunk.chunk_id] == ChunkState.OK
    assert (confirm.false_reports, confirm.confirmed) == (1, 0)
    assert await pipeline.store.maintenance.due_repair_tasks(10) == []


async def test_a_forged_block_with_a_good_crc_is_damage(pipeline: Pipeline) -> None:
    chunk = (await stored_object(pipeline))[1]
    node = pipeline.nodes.get(chunk.node_id)
    assert node is not None
    # The fake node sends each block with its own CRC: only the digest can tell.
    node.chunks[chunk.chunk_id][1] = os.urandom(len(node.chunks[chunk.chunk_id][1]))
    confirm = confirmer(pipeline)
    await confirm.receive(chunk.node_id, [chunk.chunk_id])
    await settle(confirm)
    assert await confirm.receive(chunk.node_id, [chunk.chunk_id]) == [chunk.chunk_id]
    assert (await states(pipeline))[chunk.chunk_id] == ChunkState.DAMAGED
    assert confirm.confirmed == 1
    assert len(await pipeline.store.maintenance.due_repair_tasks(10)) == 1


async def test_a_missing_chunk_or_a_silent_node_is_damage(pipeline: Pipeline) -> None:
    first, second = (await stored_object(pipeline))[:2]
    first_node, second_node = pipeline.nodes.get(first.node_id), pipeline.nodes.get(second.node_id)
    assert first_node is not None and second_node is not None
    del first_node.chunks[first.chunk_id]
    second_node.down = True
    confirm = confirmer(pipeline)
    await confirm.receive(first.node_id, [first.chunk_id])
    await confirm.receive(second.node_id, [second.chunk_id])
    await settle(confirm)
    found = await states(pipeline)
    assert (found[first.chunk_id], found[second.chunk_id]) == (ChunkState.DAMAGED,) * 2
    assert confirm.confirmed == 2


async def test_another_nodes_chunks_are_acknowledged_and_never_read(pipeline: Pipeline) -> None:
    chunks = await stored_object(pipeline)
    reporter = chunks[0].node_id
    others = [c.chunk_id for c in chunks if c.node_id != reporter]
    confirm = confirmer(pipeline)
    unknown = "e" * 32
    reported = [*others, unknown, "not-an-id"]
    assert sorted(await confirm.receive(reporter, reported)) == sorted(reported)
    assert confirm.status()["queued"] == 0
    assert set((await states(pipeline)).values()) == {ChunkState.OK}


async def test_a_report_waiting_is_not_queued_twice_and_the_queue_is_bounded(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks = [c for key in ("a", "b", "c") for c in await stored_object(pipeline, key)]
    reporter = chunks[0].node_id
    own = [c.chunk_id for c in chunks if c.node_id == reporter]
    assert len(own) == 3
    monkeypatch.setattr(confirmations, "QUEUE_PER_NODE", 2)
    confirm = confirmer(pipeline)
    assert await confirm.receive(reporter, own) == []
    assert await confirm.receive(reporter, own) == []
    assert (confirm.status()["queued"], confirm.deferred) == (2, 2)
    await settle(confirm)
    # The two read back are acknowledged; the third is taken in now.
    assert sorted(await confirm.receive(reporter, own)) == sorted(own[:2])
    await settle(confirm)
    assert await confirm.receive(reporter, own) == [own[2]]
    assert confirm.false_reports == 3
