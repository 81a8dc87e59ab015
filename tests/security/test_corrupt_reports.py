"""A corrupt-chunk report is confirmed by the gateway reading the chunk back, against a real
gateway and six real nodes over mutual TLS.

A false report (a node's own chunk, sound on its disk, sent as corrupt through the real
heartbeat RPC with that node's credential, as a lying or broken node would) keeps the chunk:
the object keeps every shard, sound, and nothing is queued for repair; the gateway logs it,
naming the node. A chunk really corrupted on a node's disk is found by that node's own
scrubber (every second here), reported in its own heartbeats, read back as damaged and
rebuilt by repair on the seventh node.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from conftest import ClusterOptions, object_chunks, random_bytes, wait_until
from heartbeat_calls import (
    beat_of,
    chunk_states,
    links_as,
    read_metadata,
    real_status,
    send_beat,
)

from diststorage.client import Client
from diststorage.core.cluster_tls import NODE_ROLE
from diststorage.local import LocalCluster
from diststorage.meta import ChunkState
from diststorage.testing import Faults

SETTLE_TIMEOUT_S = 20.0
REPAIR_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    # Seven nodes: one more than ec:4+2 needs, so a damaged shard has a node to be rebuilt on.
    return ClusterOptions(nodes=7, node_args=("--scrub-interval", "1"))


def queued_repairs(cluster: LocalCluster) -> dict[str, str]:
    return read_metadata(cluster, "SELECT object_id, segment_index FROM repair_tasks")


async def test_a_false_report_keeps_the_chunk_and_full_redundancy(
    cluster: LocalCluster, http: Client
) -> None:
    key = "reports/false"
    data = random_bytes(300_000)
    assert http.put(key, data).status == 201
    chunks = object_chunks(cluster, key)
    reporter = chunks[0].node  # seven nodes, six shards: not every node holds one
    own = [c.path.name for c in chunks if c.node == reporter]
    status = await real_status(cluster, reporter)
    links = links_as(cluster, NODE_ROLE, status.node_id)

    acknowledged: set[str] = set()
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    # Like the node would: the same report every beat until the gateway acknowledges it.
    while not set(own) <= acknowledged and time.monotonic() < deadline:
        response = await send_beat(links, cluster, beat_of(status, own))
        acknowledged |= set(response.acknowledged_corrupt_chunk_ids)
        await asyncio.sleep(0.3)
    assert set(own) <= acknowledged

    assert set(chunk_states(cluster, [c.path.name for c in chunks]).values()) == {ChunkState.OK}
    assert all(c.path.exists() for c in chunks)
    assert queued_repairs(cluster) == {}
    assert object_chunks(cluster, key) == chunks  # every shard where it was
    assert http.get(key).body == data
    log = cluster.gateway_log_path().read_text(errors="replace")
    for chunk_id in own:
        assert f"node {status.node_id} reported chunk {chunk_id} corrupt, but it reads" in log


async def test_a_chunk_corrupted_on_disk_is_found_confirmed_and_rebuilt(
    cluster: LocalCluster, http: Client
) -> None:
    key = "reports/rotten"
    data = random_bytes(300_000)
    assert http.put(key, data).status == 201
    chunks = object_chunks(cluster, key)
    rotten = chunks[2]
    Faults.flip_byte(rotten.path)

    def rebuilt() -> bool:
        now = object_chunks(cluster, key)
        return (
            rotten.path.name not in {c.path.name for c in now}
            and len(now) == len(chunks)
            and len({c.node for c in now}) == len(chunks)
            and set(chunk_states(cluster, [c.path.name for c in now]).values()) == {ChunkState.OK}
        )

    assert wait_until(rebuilt, REPAIR_TIMEOUT_S, 0.5)
    assert wait_until(lambda: queued_repairs(cluster) == {}, REPAIR_TIMEOUT_S, 0.5)
    assert http.get(key).body == data
    log = cluster.gateway_log_path().read_text(errors="replace")
    assert f"chunk {rotten.path.name} on node" in log
    assert f"reported chunk {rotten.path.name} corrupt, but" not in log
