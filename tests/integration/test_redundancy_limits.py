"""X-Redundancy within the operator's limits, over a real gateway and six nodes.

A client's policy is stored exactly, one shard per node, when the gateway's limits allow it
(by default: at least one spare shard, at most three bytes stored per byte) and the cluster
has that many distinct nodes; otherwise the answer is a precise error with the JSON body and
nothing is stored. The S3 API never lets a client choose, whatever it sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    ClusterOptions,
    chunk_files,
    cluster_in,
    error_code,
    gateway_client,
    object_chunks,
    random_bytes,
    restore_nodes,
    wait_live_nodes,
    wait_writable,
)

from diststorage.client import Client, Response
from diststorage.local import LocalCluster
from diststorage.testing import Faults

# Above the gateway's small-object size (128 KiB), so that the default is not replicated.
BODY_BYTES = 300_000


def assert_refused(response: Response, status: int, code: str, message: str) -> None:
    assert response.status == status, (response.status, response.body)
    assert error_code(response) == code
    assert response.json()["message"] == message


def assert_stored_as(cluster: LocalCluster, response: Response, key: str, spec: str) -> None:
    assert response.status == 201, response.body
    assert response.json()["redundancy"] == spec
    nodes = [chunk.node for chunk in object_chunks(cluster, key)]
    # One shard per node, never two on one.
    assert len(nodes) == len(set(nodes)), nodes
    assert all(path.exists() for path in (c.path for c in object_chunks(cluster, key)))


@pytest.mark.parametrize(
    ("spec", "shards"),
    [("replicate:2", 2), ("replicate:3", 3), ("ec:3+1", 4), ("ec:2+4", 6), ("ec:4+2", 6)],
)
def test_policies_within_the_limits_are_stored_as_asked(
    cluster: LocalCluster, http: Client, spec: str, shards: int
) -> None:
    key = f"limits/within/{spec}"
    response = http.put(key, random_bytes(BODY_BYTES), {"X-Redundancy": spec})
    assert_stored_as(cluster, response, key, spec)
    assert len(object_chunks(cluster, key)) == shards
    assert http.get(key).status == 200


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ec:6+0", "redundancy ec:6+0 survives 0 lost nodes; this gateway needs policies "
         "that survive at least 1"),
        ("replicate:1", "redundancy replicate:1 survives 0 lost nodes; this gateway needs "
         "policies that survive at least 1"),
        ("replicate:4", "redundancy replicate:4 stores 4 bytes per byte; this gateway allows "
         "at most 3"),
        ("replicate:6", "redundancy replicate:6 stores 6 bytes per byte; this gateway allows "
         "at most 3"),
        ("ec:1+5", "redundancy ec:1+5 stores 6 bytes per byte; this gateway allows at most 3"),
        ("replicate:32", "redundancy replicate:32 stores 32 bytes per byte; this gateway "
         "allows at most 3"),
        ("ec:5+2", "redundancy ec:5+2 needs 7 distinct nodes; the cluster has 6"),
        ("ec:20+12", "redundancy ec:20+12 needs 32 distinct nodes; the cluster has 6"),
    ],
)  # fmt: skip
def test_policies_outside_the_limits_or_the_cluster_are_400_and_store_nothing(
    cluster: LocalCluster, http: Client, spec: str, message: str
) -> None:
    chunks_before = chunk_files(cluster)
    for body in (random_bytes(BODY_BYTES), b"tiny", iter([b"chunked ", b"body"])):
        response = http.put("limits/refused", body, {"X-Redundancy": spec})
        assert_refused(response, 400, "invalid_redundancy", message)
    assert http.head("limits/refused").status == 404
    assert chunk_files(cluster) == chunks_before


def test_a_policy_wider_than_the_live_nodes_is_503_while_the_default_stays_writable(
    cluster: LocalCluster, http: Client
) -> None:
    Faults(cluster).kill_node(5)
    try:
        wait_live_nodes(http, cluster.nodes - 1, timeout_s=20)
        response = http.put("limits/wide", random_bytes(BODY_BYTES), {"X-Redundancy": "ec:4+2"})
        assert_refused(
            response,
            503,
            "not_enough_nodes",
            "redundancy ec:4+2 needs 6 distinct writable nodes; 5 are up",
        )
        assert http.head("limits/wide").status == 404
        # Narrower policies still fit on distinct nodes; the default is fitted to the five.
        response = http.put("limits/narrow", random_bytes(BODY_BYTES), {"X-Redundancy": "ec:3+2"})
        assert_stored_as(cluster, response, "limits/narrow", "ec:3+2")
        response = http.put("limits/fitted", random_bytes(BODY_BYTES))
        assert_stored_as(cluster, response, "limits/fitted", "ec:3+2")
    finally:
        restore_nodes(cluster, http)
    wait_writable(cluster, http)
    response = http.put("limits/wide", random_bytes(BODY_BYTES), {"X-Redundancy": "ec:4+2"})
    assert_stored_as(cluster, response, "limits/wide", "ec:4+2")


def test_the_s3_api_ignores_a_redundancy_header(cluster: LocalCluster, s3: Any) -> None:
    """Whatever a client adds, S3 objects get the default: ec:4+2, six chunks."""

    def ask_for_redundancy(request: Any, **_: Any) -> None:
        request.headers["X-Redundancy"] = "replicate:2"

    s3.create_bucket(Bucket="limits")
    s3.meta.events.register("before-sign.s3.PutObject", ask_for_redundancy)
    try:
        before = chunk_files(cluster)
        s3.put_object(Bucket="limits", Key="ignored", Body=random_bytes(BODY_BYTES))
        assert len(chunk_files(cluster) - before) == 6
    finally:
        s3.meta.events.unregister("before-sign.s3.PutObject", ask_for_redundancy)


@pytest.fixture(scope="module")
def listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalCluster, Client]]:
    """A cluster whose operator lets clients ask for exactly two policies besides ec:4+2."""
    args = ("--allow-policy", "ec:6+0", "--allow-policy", "replicate:2")
    base: Path = tmp_path_factory.mktemp("listed")
    with cluster_in(base, ClusterOptions(gateway_args=args)) as running:
        yield running, gateway_client(running.url)


def test_an_operators_list_is_exactly_what_clients_may_ask_for(
    listed: tuple[LocalCluster, Client],
) -> None:
    cluster, http = listed
    for spec in ("ec:6+0", "replicate:2", "ec:4+2"):
        key = f"listed/{spec}"
        response = http.put(key, random_bytes(BODY_BYTES), {"X-Redundancy": spec})
        assert_stored_as(cluster, response, key, spec)
        assert http.get(key).status == 200
    for spec in ("replicate:3", "ec:3+1"):
        response = http.put("listed/refused", random_bytes(BODY_BYTES), {"X-Redundancy": spec})
        assert_refused(
            response,
            400,
            "invalid_redundancy",
            f"redundancy {spec} is not allowed here; ask for one of ec:4+2, ec:6+0, "
            "replicate:2, or none for the default",
        )
    assert http.head("listed/refused").status == 404
