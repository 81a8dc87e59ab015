"""Writes with M nodes down, with real processes: ec:4+2 on six nodes with two SIGKILLed
still takes writes (its six shards doubled up on the four live nodes, committed below target)
and reads them back; repair moves the doubled shards to distinct nodes once the killed nodes
return. With three down (fewer than K) a write is refused with 503 and stores nothing.

Faults injected: SIGKILL of nodes, and their restart.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from conftest import (
    MIB,
    ClusterOptions,
    chunk_files,
    error_code,
    md5_hex,
    object_chunks,
    random_bytes,
    restore_nodes,
    temp_files,
    wait_live_nodes,
    wait_until,
)

from diststorage.client import Client
from diststorage.local import LocalCluster
from diststorage.testing import Faults

STRIPE = 64 * 1024
SEGMENT_STRIPES = 16
NODE_TIMEOUT_S = 3.0
GC_GRACE_S = 3.0
HEAL_TIMEOUT_S = 60.0
KILLED = (4, 5)


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    return ClusterOptions(
        nodes=6,
        redundancy="ec:4+2",
        gateway_args=(
            # Small stripes and segments: the objects here span several segments.
            "--stripe-size",
            str(STRIPE),
            "--segment-max-stripes",
            str(SEGMENT_STRIPES),
            "--node-timeout",
            str(NODE_TIMEOUT_S),
            "--node-suspect",
            "1.5",
            "--repair-grace",
            "60",
            "--gc-grace",
            str(GC_GRACE_S),
            "--repair-rate",
            str(200 * MIB),
        ),
    )


def repair_figures(http: Client) -> dict[str, object]:
    figures: dict[str, object] = http.repair()
    return figures


def shards_per_node(cluster: LocalCluster, key: str) -> dict[int, Counter[int]]:
    """Segment → how many of its shards each node holds, from the gateway's metadata."""
    placed: dict[int, Counter[int]] = {}
    for chunk in object_chunks(cluster, key):
        placed.setdefault(chunk.segment, Counter())[chunk.node] += 1
    return placed


def test_m_nodes_down_writes_double_up_and_repair_spreads_them_out(
    cluster: LocalCluster, http: Client
) -> None:
    for index in KILLED:
        Faults(cluster).kill_node(index)
    wait_live_nodes(http, cluster.nodes - len(KILLED), timeout_s=15)

    size = 3 * SEGMENT_STRIPES * STRIPE + 12345  # four segments, the last one short
    data = random_bytes(size)
    response = http.put("degraded/doubled", data)
    assert response.status == 201, response.body
    assert response.json()["redundancy"] == "ec:4+2"
    placed = shards_per_node(cluster, "degraded/doubled")
    assert len(placed) == 4, placed
    for segment, per_node in placed.items():
        # Six shards on the four live nodes, each at most twice, none on a killed node.
        assert sum(per_node.values()) == 6, (segment, per_node)
        assert len(per_node) == 4, (segment, per_node)
        assert max(per_node.values()) == 2, (segment, per_node)
        assert not set(per_node) & set(KILLED), (segment, per_node)
    figures = repair_figures(http)
    assert figures["segments_queued"] == 4, figures
    assert figures["stripes_below_target"] == 3 * SEGMENT_STRIPES + 1, figures
    got = http.get("degraded/doubled")
    assert got.status == 200
    assert md5_hex(got.body) == md5_hex(data)

    # The killed nodes return: repair moves one of each doubled pair to them.
    restore_nodes(cluster, http)

    def distinct() -> bool:
        figures.update(repair_figures(http))
        return figures["segments_queued"] == 0 and figures["stripes_below_target"] == 0

    assert wait_until(distinct, HEAL_TIMEOUT_S, 0.5), figures
    for segment, per_node in shards_per_node(cluster, "degraded/doubled").items():
        assert sorted(per_node) == list(range(cluster.nodes)), (segment, per_node)
        assert set(per_node.values()) == {1}, (segment, per_node)
    for chunk in object_chunks(cluster, "degraded/doubled"):
        assert chunk.path.is_file(), chunk
    got = http.get("degraded/doubled")
    assert got.status == 200
    assert md5_hex(got.body) == md5_hex(data)
    # The copies repair replaced are deleted from their nodes.
    in_use = {c.path for c in object_chunks(cluster, "degraded/doubled")}
    assert wait_until(lambda: chunk_files(cluster) == in_use, 30.0)
    assert http.delete("degraded/doubled").status == 204


def test_fewer_than_k_nodes_refuse_writes_and_store_nothing(
    cluster: LocalCluster, http: Client
) -> None:
    down = (3, *KILLED)
    for index in down:
        Faults(cluster).kill_node(index)
    wait_live_nodes(http, cluster.nodes - len(down), timeout_s=15)
    live = [i for i in range(cluster.nodes) if i not in down]
    keys_before = http.list_keys()
    files_before = chunk_files(cluster, live)
    for body in (random_bytes(2 * MIB), iter([b"chunked ", random_bytes(MIB)])):
        response = http.put("degraded/refused", body)
        assert response.status == 503, response.body
        assert error_code(response) == "not_enough_nodes"
    # Past the garbage-collection grace: nothing was ever written, nothing is left.
    time.sleep(GC_GRACE_S + 1.0)
    assert http.list_keys() == keys_before
    assert "degraded/refused" not in http.list_keys()
    assert chunk_files(cluster, live) == files_before
    assert not temp_files(cluster, live)
    restore_nodes(cluster, http)
