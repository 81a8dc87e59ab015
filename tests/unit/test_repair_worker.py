"""The repair worker in process: a segment whose node is lost is rebuilt onto a fresh node
through the chunk-set writer, the rows swap in one transaction, and the lost copies go."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from diststorage.core.policy import parse_policy
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.objects import PutOperation
from diststorage.gateway.workers.repair import RepairWorker
from diststorage.gateway.workers.throttle import TokenBucket
from diststorage.meta import DEFAULT_NAMESPACE, MetadataStore
from diststorage.testing import BytesBody, FakeClock, Pipeline, in_memory_pipeline

STRIPE_BYTES = 4096


@pytest.fixture
async def pipeline(tmp_path: Path, sqlite_store: MetadataStore) -> Pipeline:
    settings = GatewaySettings(
        data_dir=tmp_path / "gateway",
        stripe_size_bytes=STRIPE_BYTES,
        segment_max_stripes=3,
        small_object_bytes=0,
        inline_object_bytes=0,
        redundancy="ec:2+1",
    )
    return await in_memory_pipeline(settings, sqlite_store, 3, FakeClock())


def repair_worker(pipeline: Pipeline) -> RepairWorker:
    return RepairWorker(
        pipeline.settings,
        pipeline.store.maintenance,
        pipeline.inventory,
        pipeline.chunk_sets,
        pipeline.reader,
        pipeline.nodes,
        TokenBucket(1e12),
    )


async def test_a_lost_nodes_shards_are_rebuilt_onto_a_fresh_node(pipeline: Pipeline) -> None:
    data = os.urandom(STRIPE_BYTES * 5 + 77)  # 6 stripes: two segments
    operation = PutOperation(
        DEFAULT_NAMESPACE, "k", "application/x-test", parse_policy("ec:2+1"), len(data), True
    )
    await pipeline.writer.write(operation, BytesBody(data))
    lost = pipeline.nodes.node(0)
    lost_chunks = set(lost.chunks)
    fresh = pipeline.nodes.add()
    await pipeline.nodes.announce(pipeline.inventory)
    # The operator removes the lost node for good: its segments are queued, it is forgotten.
    assert await pipeline.store.maintenance.queue_segments_on_nodes([lost.node_id]) == 2
    pipeline.inventory.forget(lost.node_id)

    repair = repair_worker(pipeline)
    await repair.work()

    layout = await pipeline.store.get_layout(DEFAULT_NAMESPACE, "k")
    assert lost.node_id not in {c.node_id for c in layout.chunks}
    rebuilt = [c for c in layout.chunks if c.node_id == fresh.node_id]
    assert len(rebuilt) == 2 and set(fresh.chunks) == {c.chunk_id for c in rebuilt}
    assert repair.counters.segments_repaired == 2
    assert repair.meter.total == sum(c.size_bytes for c in rebuilt)
    assert lost_chunks.isdisjoint(lost.chunks)  # the lost copies were sent to be deleted
    pieces = [p async for p in pipeline.reader.stream(layout, 0, len(data))]
    assert b"".join(pieces) == data
    assert await pipeline.store.maintenance.due_repair_tasks(10) == []


async def test_a_rebuild_that_fails_deletes_what_it_wrote_and_stays_queued(
    pipeline: Pipeline,
) -> None:
    data = os.urandom(STRIPE_BYTES * 3)
    operation = PutOperation(
        DEFAULT_NAMESPACE, "k", "application/x-test", parse_policy("ec:2+1"), len(data), True
    )
    await pipeline.writer.write(operation, BytesBody(data))
    lost = pipeline.nodes.node(0)
    fresh = pipeline.nodes.add()
    fresh.fail_after_blocks = 1
    await pipeline.nodes.announce(pipeline.inventory)
    await pipeline.store.maintenance.queue_segments_on_nodes([lost.node_id])
    pipeline.inventory.forget(lost.node_id)

    repair = repair_worker(pipeline)
    await repair.work()

    assert fresh.chunks == {}
    assert repair.counters.failures == 1
    layout = await pipeline.store.get_layout(DEFAULT_NAMESPACE, "k")
    assert lost.node_id in {c.node_id for c in layout.chunks}
