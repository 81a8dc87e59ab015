"""A download whose shard moves under it (gateway/objects/reader.py ``SegmentFetcher``):
repair on the leader rebuilds a shard elsewhere, commits it and deletes the old chunk, while
another gateway streams the object from the layout it read before. The one-hour chaos soak
cut off two such GETs with two nodes out (the old chunk gone, the two nodes down: three
shards of six left). The reader now looks the segment up again when a shard's chunk is not
on its node, and reads the moved shard where it is now."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from diststorage.core.errors import DataLoss
from diststorage.core.ids import new_id
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.objects.operations import PutOperation
from diststorage.gateway.objects.reader import NodePenalties, ObjectReader
from diststorage.meta import DEFAULT_NAMESPACE, ChunkRef, MetadataStore, ObjectLayout
from diststorage.testing import BytesBody, FakeClock, Pipeline, in_memory_pipeline

NS = DEFAULT_NAMESPACE
STRIPE = 4096


async def _pipeline(tmp_path: Path, store: MetadataStore) -> Pipeline:
    settings = GatewaySettings(
        data_dir=tmp_path / "gateway",
        stripe_size_bytes=STRIPE,
        segment_max_stripes=3,
        small_object_bytes=2 * STRIPE,
        inline_object_bytes=1024,
        redundancy="ec:4+2",
    )
    return await in_memory_pipeline(settings, store, 7, FakeClock())


async def _move_shard(pipeline: Pipeline, layout: ObjectLayout, shard: int) -> None:
    """What repair does: the shard's chunk copied to a node holding none of the segment, the
    copy committed in its place, the old chunk deleted from its node."""
    old = next(c for c in layout.chunks if c.segment_index == 0 and c.shard_index == shard)
    used = {c.node_id for c in layout.chunks if c.segment_index == 0}
    spare = next(n for n in pipeline.nodes.nodes.values() if n.node_id not in used)
    new = dataclasses.replace(old, chunk_id=new_id(), node_id=spare.node_id)
    spare.chunks[new.chunk_id] = list(pipeline.nodes.nodes[old.node_id].chunks[old.chunk_id])
    moved = await pipeline.store.maintenance.replace_chunks(
        layout.info.object_id, [ChunkRef(old.chunk_id, old.node_id)], [new]
    )
    assert moved
    del pipeline.nodes.nodes[old.node_id].chunks[old.chunk_id]


def _reader(pipeline: Pipeline, find_moved: bool) -> ObjectReader:
    layouts = pipeline.store.maintenance if find_moved else None
    penalties = NodePenalties(pipeline.clock)
    return ObjectReader(
        pipeline.settings,
        pipeline.inventory,
        pipeline.nodes,
        penalties,
        pipeline.damage,
        None,
        layouts,
    )


@pytest.mark.parametrize("find_moved", [True, False], ids=["looked-up-again", "layout-final"])
async def test_a_shard_moved_during_a_read_is_read_where_it_went(
    tmp_path: Path, sqlite_store: MetadataStore, find_moved: bool
) -> None:
    pipeline = await _pipeline(tmp_path, sqlite_store)
    body = os.urandom(5 * STRIPE + 17)
    operation = PutOperation(NS, "k", "application/octet-stream", None, len(body), True)
    await pipeline.writer.write(operation, BytesBody(body), None)
    layout = await pipeline.store.get_layout(NS, "k")  # what the download read first
    await _move_shard(pipeline, layout, shard=0)
    # Two nodes of the segment down, within ec:4+2's budget, with the moved shard gone from
    # where the layout says: three of six where the layout points.
    for chunk in layout.chunks:
        if chunk.segment_index == 0 and chunk.shard_index in (1, 2):
            pipeline.nodes.nodes[chunk.node_id].down = True
    stream = _reader(pipeline, find_moved).stream(layout, 0, len(body))
    if find_moved:
        assert b"".join([piece async for piece in stream]) == body
    else:
        with pytest.raises(DataLoss, match="cannot be rebuilt"):
            _ = [piece async for piece in stream]
