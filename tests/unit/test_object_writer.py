"""The object writer in process: real SQLite metadata, fake nodes. A full write reads back, a
node failing mid-stream leaves a degraded but committed object, and a failure past the
policy's budget leaves nothing: no chunk on any node and no row."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from diststorage.core.errors import NodeUnavailable
from diststorage.core.policy import parse_policy
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.objects import PutOperation
from diststorage.meta import DEFAULT_NAMESPACE, MetadataStore
from diststorage.testing import BytesBody, FakeClock, Pipeline, in_memory_pipeline

STRIPE_BYTES = 4096
SEGMENT_STRIPES = 4


def settings_in(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        data_dir=tmp_path / "gateway",
        stripe_size_bytes=STRIPE_BYTES,
        segment_max_stripes=SEGMENT_STRIPES,
        write_stripes_in_flight=2,
        small_object_bytes=0,
        inline_object_bytes=0,
        redundancy="ec:4+2",
    )


@pytest.fixture
async def pipeline(tmp_path: Path, sqlite_store: MetadataStore) -> Pipeline:
    return await in_memory_pipeline(settings_in(tmp_path), sqlite_store, 6, FakeClock())


def put(key: str, size: int | None, policy: str | None = None) -> PutOperation:
    return PutOperation(
        namespace=DEFAULT_NAMESPACE,
        key=key,
        content_type="application/x-test",
        requested_policy=None if policy is None else parse_policy(policy),
        declared_size=size,
        replace=True,
    )


async def read_back(pipeline: Pipeline, key: str) -> bytes:
    layout = await pipeline.store.get_layout(DEFAULT_NAMESPACE, key)
    return b"".join([p async for p in pipeline.reader.stream(layout, 0, layout.info.size_bytes)])


def row_counts(tmp_path: Path) -> tuple[int, int]:
    with sqlite3.connect(tmp_path / "metadata.db") as db:
        objects = db.execute("SELECT count(*) FROM objects").fetchone()[0]
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    return int(objects), int(chunks)


async def test_a_full_write_puts_every_shard_on_its_own_node_and_reads_back(
    pipeline: Pipeline,
) -> None:
    data = os.urandom(STRIPE_BYTES * 10 + 123)  # 11 stripes: three segments
    info = await pipeline.writer.write(put("big", len(data)), BytesBody(data))
    assert (info.size_bytes, info.policy) == (len(data), "ec:4+2")
    layout = await pipeline.store.get_layout(DEFAULT_NAMESPACE, "big")
    assert len(layout.chunks) == 3 * 6
    for segment in range(3):
        nodes = {c.node_id for c in layout.chunks if c.segment_index == segment}
        assert len(nodes) == 6
    assert pipeline.nodes.chunk_ids() == {c.chunk_id for c in layout.chunks}
    assert await read_back(pipeline, "big") == data
    assert pipeline.writer.active_uploads() == []


async def test_a_body_of_unknown_length_is_written_too(pipeline: Pipeline) -> None:
    data = os.urandom(STRIPE_BYTES * 5)
    await pipeline.writer.write(put("chunked", None), BytesBody(data))
    assert await read_back(pipeline, "chunked") == data


async def test_a_node_failing_mid_stream_is_dropped_and_the_object_commits_degraded(
    pipeline: Pipeline,
) -> None:
    failing = pipeline.nodes.node(0)
    failing.fail_after_blocks = 2
    data = os.urandom(STRIPE_BYTES * 10)
    await pipeline.writer.write(put("degraded", len(data)), BytesBody(data))
    layout = await pipeline.store.get_layout(DEFAULT_NAMESPACE, "degraded")
    assert failing.node_id not in {c.node_id for c in layout.chunks}
    assert failing.chunks == {}
    assert await read_back(pipeline, "degraded") == data
    # Every segment is short of a node (the later ones avoid the failed node), and each is
    # queued for repair in the commit's own transaction.
    tasks = await pipeline.store.maintenance.due_repair_tasks(10)
    assert sorted((t.object_id, t.segment_index) for t in tasks) == [
        (layout.info.object_id, segment) for segment in range(3)
    ]


async def test_a_hung_node_costs_its_deadline_and_is_dropped(pipeline: Pipeline) -> None:
    hung = pipeline.nodes.node(1)
    hung.deadline_s = 0.05
    hung.hang()
    data = os.urandom(STRIPE_BYTES * 3)
    await pipeline.writer.write(put("slow", len(data)), BytesBody(data))
    layout = await pipeline.store.get_layout(DEFAULT_NAMESPACE, "slow")
    assert hung.node_id not in {c.node_id for c in layout.chunks}
    hung.release()
    assert await read_back(pipeline, "slow") == data


async def test_a_one_stripe_object_tolerates_a_failed_node(pipeline: Pipeline) -> None:
    pipeline.nodes.node(2).fail_after_blocks = 0
    data = os.urandom(1000)
    await pipeline.writer.write(put("small", len(data)), BytesBody(data))
    assert await read_back(pipeline, "small") == data


async def test_failures_past_the_budget_roll_back_every_chunk_and_row(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # ec:4+2 commits on 4 distinct nodes at least: three failures are one too many.
    pipeline.nodes.node(0).fail_after_blocks = 3
    pipeline.nodes.node(1).fail_after_blocks = 5
    pipeline.nodes.node(2).fail_after_blocks = 4
    data = os.urandom(STRIPE_BYTES * 10)
    with pytest.raises(NodeUnavailable):
        await pipeline.writer.write(put("doomed", len(data)), BytesBody(data))
    assert pipeline.nodes.chunk_ids() == set()
    assert row_counts(tmp_path) == (0, 0)
    assert pipeline.writer.active_uploads() == []
    assert not await pipeline.store.key_exists(DEFAULT_NAMESPACE, "doomed")


async def test_a_failure_in_a_later_segment_deletes_the_earlier_segments_too(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    # Each node takes 4 blocks per segment: these fail during the second segment.
    for index in (0, 1, 2):
        pipeline.nodes.node(index).fail_after_blocks = 5
    data = os.urandom(STRIPE_BYTES * 12)
    with pytest.raises(NodeUnavailable):
        await pipeline.writer.write(put("late", len(data)), BytesBody(data))
    assert pipeline.nodes.chunk_ids() == set()
    assert sum(len(n.deleted) for n in pipeline.nodes.nodes.values()) >= 6
    assert row_counts(tmp_path) == (0, 0)
