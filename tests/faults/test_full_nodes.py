"""Nodes filled to capacity: writes go around full nodes while they can, fail with 507 (and
store nothing) when they cannot, never exceed a node's capacity, and once space is freed,
repair brings every stripe back to full redundancy."""

from __future__ import annotations

import pytest
from conftest import (
    MIB,
    ClusterOptions,
    error_code,
    md5_hex,
    object_chunks,
    random_bytes,
    wait_until,
)

from diststorage.client import Client
from diststorage.local import LocalCluster

NODE_CAPACITY = 12 * MIB
OBJECT = MIB + 17


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    return ClusterOptions(
        node_capacity_bytes=NODE_CAPACITY,
        gateway_args=("--repair-grace", "2", "--node-timeout", "3"),
    )


def below_target(http: Client) -> int:
    count: int = http.repair()["stripes_below_target"]
    return count


def test_filling_up_then_freeing_space(cluster: LocalCluster, http: Client) -> None:
    written: dict[str, str] = {}
    refused = 0
    for number in range(200):
        key = f"full/{number}"
        data = random_bytes(OBJECT)
        keys_before = http.list_keys()
        response = http.put(key, data, {"X-Redundancy": "ec:4+2"})
        if response.status == 201:
            written[key] = md5_hex(data)
            continue
        assert response.status == 507, response.body
        assert error_code(response) == "insufficient_storage"
        assert http.list_keys() == keys_before
        refused += 1
        if refused == 3:
            break
    assert refused == 3, "the nodes never filled up"
    # 72 MiB of room and 1.5 MiB of chunks per object: most of it got used.
    assert len(written) >= 30, len(written)

    for node in http.nodes():
        assert node["used"] <= NODE_CAPACITY, node
    for key, md5 in written.items():
        got = http.get(key)
        assert got.status == 200, (key, got.body[:200])
        assert md5_hex(got.body) == md5, key

    # Free half the space: what was written short of its target is completed by repair.
    for key in list(written)[::2]:
        assert http.delete(key).status == 204
        del written[key]
    assert wait_until(lambda: below_target(http) == 0, 60.0, 0.5), http.repair()
    for key, md5 in written.items():
        located = object_chunks(cluster, key)
        assert len({c.node for c in located}) == 6, (key, located)
        assert md5_hex(http.get(key).body) == md5, key
    # Freed space reaches the gateway with the nodes' next heartbeats.
    last: list[object] = []

    def fits() -> bool:
        response = http.put("full/after", random_bytes(OBJECT), {"X-Redundancy": "ec:4+2"})
        last[:] = [response.status, response.body]
        return response.status == 201

    assert wait_until(fits, 10.0, 1.0), (last, http.nodes())
