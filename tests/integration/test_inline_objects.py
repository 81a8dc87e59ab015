"""Small objects under the default policy live in the metadata database, not on nodes.

A real cluster whose gateway keeps objects of up to INLINE bytes inline: what clients see is
the same as for any object (round trips, ranges, overwrite, delete, 409, bad bodies); what
differs is where the bytes are, which these tests check on disk.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Iterator

import pytest
from conftest import (
    ClusterOptions,
    chunk_files,
    md5_hex,
    object_chunks,
    parse_raw_response,
    random_bytes,
    raw_exchange,
    restore_nodes,
    signed_head,
    wait_live_nodes,
    wait_until,
    wait_writable,
)

from diststorage.client import Client
from diststorage.local import LocalCluster

INLINE = 16 * 1024


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    # The limit said outright, so the tests hold whatever the default becomes; a short node
    # timeout, so the test with every node stopped need not wait long to see them down.
    return ClusterOptions(
        env={
            "DISTSTORAGE_GATEWAY_INLINE_OBJECT_BYTES": str(INLINE),
            "DISTSTORAGE_GATEWAY_NODE_TIMEOUT_S": "3",
        }
    )


def inline_body_rows(cluster: LocalCluster, key: str) -> list[bytes]:
    database = cluster.data_dir / "gateway" / "metadata.db"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        rows = connection.execute(
            "SELECT b.body FROM inline_bodies b JOIN objects o ON o.id = b.object_id"
            " WHERE o.key = ?",
            (key.encode(),),
        ).fetchall()
    finally:
        connection.close()
    return [bytes(row[0]) for row in rows]


@pytest.mark.parametrize("size", [0, 1, 4096, INLINE])
def test_small_objects_round_trip_without_touching_a_node(
    cluster: LocalCluster, http: Client, size: int
) -> None:
    key = f"inline/{size}"
    data = random_bytes(size)
    before = chunk_files(cluster)
    created = http.put(key, data, {"Content-Type": "text/x-small"})
    assert created.status == 201, created.body
    assert created.json()["redundancy"] == "inline"
    assert created.json()["md5"] == md5_hex(data)
    assert chunk_files(cluster) == before
    assert inline_body_rows(cluster, key) == [data]
    got = http.get(key)
    assert (got.status, got.body) == (200, data)
    assert got.header("Content-Type") == "text/x-small"
    assert got.header("ETag") == f'"{md5_hex(data)}"'
    assert got.header("X-Redundancy") == "inline"
    head = http.head(key)
    assert (head.status, head.header("Content-Length"), head.body) == (200, str(size), b"")


def test_larger_or_asked_for_policies_go_to_nodes(cluster: LocalCluster, http: Client) -> None:
    larger = random_bytes(INLINE + 1)
    assert http.put("inline/larger", larger).json()["redundancy"] == "replicate:3"
    assert len(object_chunks(cluster, "inline/larger")) == 3
    asked = random_bytes(100)
    created = http.put("inline/asked", asked, {"X-Redundancy": "ec:4+2"})
    assert created.json()["redundancy"] == "ec:4+2"
    assert len(object_chunks(cluster, "inline/asked")) == 6
    assert inline_body_rows(cluster, "inline/larger") == []
    assert inline_body_rows(cluster, "inline/asked") == []
    assert http.get("inline/larger").body == larger
    assert http.get("inline/asked").body == asked


def test_ranges_of_an_inline_object(http: Client) -> None:
    data = random_bytes(5000)
    assert http.put("inline/ranges", data).status == 201
    for header, expected, content_range in (
        ("bytes=10-19", data[10:20], "bytes 10-19/5000"),
        ("bytes=4990-", data[4990:], "bytes 4990-4999/5000"),
        ("bytes=-7", data[-7:], "bytes 4993-4999/5000"),
        ("bytes=0-99999", data, "bytes 0-4999/5000"),
    ):
        got = http.get("inline/ranges", {"Range": header})
        assert (got.status, got.body) == (206, expected), header
        assert got.header("Content-Range") == content_range
    unsatisfiable = http.get("inline/ranges", {"Range": "bytes=5000-"})
    assert unsatisfiable.status == 416
    assert unsatisfiable.json()["error"]


def test_versions_move_between_inline_and_nodes(cluster: LocalCluster, http: Client) -> None:
    key = "inline/versions"
    big = random_bytes(200 * 1024)
    assert http.put(key, big).status == 201
    big_chunks = {c.path for c in object_chunks(cluster, key)}
    assert big_chunks and big_chunks <= chunk_files(cluster)
    small = random_bytes(300)
    assert http.put(key, small).json()["redundancy"] == "inline"
    assert http.get(key).body == small
    # The version on nodes is gone from them too, once nothing reads it.
    assert wait_until(lambda: not (big_chunks & chunk_files(cluster)), 15.0)
    conflict = http.put(key, b"other", method="POST")
    assert conflict.status == 409 and conflict.json()["error"] == "already_exists"
    assert http.get(key).body == small
    assert http.put(key, big).json()["redundancy"] == "ec:4+2"
    assert http.get(key).body == big
    assert inline_body_rows(cluster, key) == []


def test_delete_removes_the_object_and_its_bytes(cluster: LocalCluster, http: Client) -> None:
    assert http.put("inline/deleted", b"short-lived").status == 201
    assert http.delete("inline/deleted").status == 204
    assert inline_body_rows(cluster, "inline/deleted") == []
    assert http.get("inline/deleted").status == 404
    assert http.delete("inline/deleted").status == 404


def test_a_short_body_stores_nothing(cluster: LocalCluster, http: Client) -> None:
    head = signed_head("PUT", "/inline/short", cluster.http_port, {"Content-Length": "100"})
    request = head + b"x" * 40
    raw = raw_exchange(cluster.http_port, request, shutdown_write=True)
    if raw:  # the client's half-close may end the exchange before any answer
        status, _, body = parse_raw_response(raw)
        assert status == 400, body
    assert http.get("inline/short").status == 404
    assert inline_body_rows(cluster, "inline/short") == []


def test_a_corrupt_inline_body_is_never_served(cluster: LocalCluster, http: Client) -> None:
    data = random_bytes(2048)
    assert http.put("inline/corrupt", data).status == 201
    database = cluster.data_dir / "gateway" / "metadata.db"
    connection = sqlite3.connect(database, timeout=10)
    try:
        with connection:
            connection.execute(
                "UPDATE inline_bodies SET body = ? WHERE object_id ="
                " (SELECT id FROM objects WHERE key = ?)",
                (b"\x00" + data[1:], b"inline/corrupt"),
            )
    finally:
        connection.close()
    got = http.get("inline/corrupt")
    assert got.status == 503
    assert got.json()["error"] == "data_loss"
    assert data[1:100] not in got.body
    # A range misses the damage but is refused all the same: the body is checked whole.
    assert http.get("inline/corrupt", {"Range": "bytes=100-199"}).status == 503


@pytest.fixture
def all_nodes_stopped(cluster: LocalCluster, http: Client) -> Iterator[None]:
    for index in range(cluster.nodes):
        cluster.signal_node(index, signal.SIGSTOP)
    try:
        yield
    finally:
        restore_nodes(cluster, http)
        wait_writable(cluster, http)


def test_inline_objects_need_no_node(
    cluster: LocalCluster, http: Client, all_nodes_stopped: None
) -> None:
    wait_live_nodes(http, 0)
    data = random_bytes(1000)
    assert http.put("inline/no-nodes", data).status == 201
    assert http.get("inline/no-nodes").body == data
    refused = http.put("inline/no-nodes-big", random_bytes(INLINE + 1))
    assert refused.status == 503, refused.body
    assert http.get("inline/no-nodes-big").status == 404
