"""Everything killed with SIGKILL and started again on the same folders: acknowledged objects
come back byte for byte; an upload cut off by the gateway's death never becomes visible."""

from __future__ import annotations

import socket

import pytest
from conftest import (
    DEFAULT_STRIPE,
    MIB,
    ClusterOptions,
    chunk_files,
    md5_hex,
    object_chunks,
    random_bytes,
    signed_head,
    temp_files,
    wait_live_nodes,
    wait_until,
)

from diststorage.client import Client
from diststorage.local import LocalCluster


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    # ec:6+0 (a plain split, no spare shard) is refused unless the operator allows it.
    return ClusterOptions(gateway_args=("--min-spare-shards", "0"))


OBJECTS = [
    ("restart/ec-empty", "ec:4+2", 0),
    ("restart/ec-one", "ec:4+2", 1),
    ("restart/ec-stripe", "ec:4+2", 3 * MIB + 1),
    ("restart/ec-multi-stripe", "ec:4+2", 9 * MIB + 5),
    ("restart/split", "ec:6+0", MIB + 3),
    ("restart/replicas", "replicate:3", 5 * MIB + 11),
    ("restart/ünïcödé key", "replicate:3", 777),
]


def test_objects_survive_sigkill_of_every_process(cluster: LocalCluster, http: Client) -> None:
    expected: dict[str, tuple[bytes, str]] = {}
    for key, policy, size in OBJECTS:
        data = random_bytes(size)
        response = http.put(key, data, {"X-Redundancy": policy, "Content-Type": "x/restart"})
        assert response.status == 201, (key, response.body)
        expected[key] = (data, policy)
    # A replaced object comes back in its last version; a deleted one stays deleted.
    assert http.put("restart/replaced", b"version one").status == 201
    second = random_bytes(2 * MIB + 1)
    assert http.put("restart/replaced", second).status == 201
    expected["restart/replaced"] = (second, "ec:4+2")
    assert http.put("restart/deleted", b"gone").status == 201
    assert http.delete("restart/deleted").status == 204

    heads = {key: http.head(key) for key in expected}
    listing = http.list_keys("restart/")
    assert listing == sorted(expected, key=str.encode)

    cluster.kill_all()
    cluster.restart_all()

    assert http.list_keys("restart/") == listing
    for key, (data, policy) in expected.items():
        got = http.get(key)
        assert got.status == 200, (key, got.body[:200])
        assert md5_hex(got.body) == md5_hex(data), key
        assert got.body == data, key
        assert got.header("ETag") == f'"{md5_hex(data)}"'
        assert got.header("X-Redundancy") == policy
        assert got.header("Last-Modified") == heads[key].header("Last-Modified")
        if key != "restart/replaced":
            assert got.header("Content-Type") == "x/restart"
    assert http.get("restart/deleted").status == 404

    # And the restarted cluster takes new writes.
    fresh = random_bytes(MIB)
    assert http.put("restart/after", fresh).status == 201
    assert http.get("restart/after").body == fresh


def test_upload_cut_off_by_gateway_kill_stays_invisible(
    cluster: LocalCluster, http: Client
) -> None:
    """The gateway dies with half the body received: after a restart the key shows the version
    that was there before (or nothing), never the cut-off upload."""
    old = random_bytes(MIB + 1)
    assert http.put("restart/cut/replaced", old).status == 201
    old_chunks = {c.path for c in object_chunks(cluster, "restart/cut/replaced")}
    keys_before = http.list_keys()
    chunks_before = chunk_files(cluster)

    for key in ("restart/cut/new", "restart/cut/replaced"):
        declared = 48 * MIB
        with socket.create_connection((cluster.host, cluster.http_port), timeout=30) as sock:
            head = {"Content-Length": str(declared)}
            sock.sendall(signed_head("PUT", f"/{key}", cluster.http_port, head))
            for _ in range(20):
                sock.sendall(random_bytes(MIB))
            # Mid-stream for real: chunks are being written on the nodes.
            assert wait_until(lambda: bool(temp_files(cluster)), 10.0)
            cluster.kill_gateway()
        cluster.start_gateway()
        wait_live_nodes(http, cluster.nodes)

        assert http.get("restart/cut/new").status == 404
        assert http.list_keys() == keys_before
        replaced = http.get("restart/cut/replaced")
        assert replaced.status == 200
        assert replaced.body == old
        # The nodes drop the half-written chunks when their streams break.
        assert wait_until(lambda: not temp_files(cluster), 10.0), temp_files(cluster)
        assert not chunk_files(cluster) - chunks_before
        assert old_chunks <= chunk_files(cluster)

    # The key is usable: a create succeeds now.
    data = random_bytes(3 * MIB)
    assert http.put("restart/cut/new", data, method="POST").status == 201
    assert http.get("restart/cut/new").body == data


def _restart_gateway(
    cluster: LocalCluster, http: Client, args: list[str], env: dict[str, str]
) -> None:
    cluster.kill_gateway()
    cluster.gateway_args = args
    cluster.env = env
    cluster.start_gateway()
    wait_live_nodes(http, cluster.nodes)


def test_objects_read_back_after_the_stripe_geometry_changes(
    cluster: LocalCluster, http: Client
) -> None:
    """Stripe size and segment length are recorded with each object: a gateway restarted with
    other ones (as after an upgrade that changed the defaults) reads what was written before,
    and what it writes then reads back under the old settings too."""
    stripe = 64 * 1024
    default_args, default_env = list(cluster.gateway_args), dict(cluster.env)
    small = [*default_args, "--stripe-size", str(stripe)]
    # Segments of 3 stripes, so a few hundred KiB span several.
    small_env = {**default_env, "DISTSTORAGE_GATEWAY_SEGMENT_MAX_STRIPES": "3"}
    before = random_bytes(7 * stripe + 123)
    try:
        _restart_gateway(cluster, http, small, small_env)
        assert http.put("restart/geometry/small", before).status == 201
        assert http.get("restart/geometry/small").body == before
        _restart_gateway(cluster, http, default_args, default_env)
        after = random_bytes(DEFAULT_STRIPE + 5)
        assert http.put("restart/geometry/default", after).status == 201
        assert http.get("restart/geometry/small").body == before
        # Across the first segment boundary and the stripe boundary after it, in the old
        # geometry.
        first, last = 3 * stripe - 10, 4 * stripe + 9
        ranged = http.get("restart/geometry/small", {"Range": f"bytes={first}-{last}"})
        assert ranged.status == 206
        assert ranged.body == before[first : last + 1]
        _restart_gateway(cluster, http, small, small_env)
        assert http.get("restart/geometry/default").body == after
    finally:
        _restart_gateway(cluster, http, default_args, default_env)
