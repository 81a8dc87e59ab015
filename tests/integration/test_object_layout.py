"""``GET /_/objects/{key}/layout`` on a real cluster: each shard's node and state as the nodes
and the metadata really are, one test per state (ok; a node killed → down; a chunk corrupted on
disk and found by a read → damaged), pages through many segments, an object completed from
parts (one of them inline), an inline object, and keys that are anything but paths.

Repair is off, so the damage a test makes stays for it to see (tests/faults/test_self_healing.py
covers repair). Small stripes of two per segment make objects of many segments in a few hundred
kilobytes. Where the shards are is checked against the gateway's SQLite database, read
read-only (``object_chunks``), and against the nodes' identity files.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    ClusterOptions,
    error_code,
    gateway_client,
    md5_hex,
    node_ids,
    object_chunks,
    random_bytes,
    restore_nodes,
    s3_client,
    upload_in_parts,
    wait_until,
)

from diststorage.client import Client
from diststorage.local import LocalCluster
from diststorage.testing import Faults

STRIPE = 16 * 1024
SEGMENT_STRIPES = 2
SEGMENT = STRIPE * SEGMENT_STRIPES
NODE_TIMEOUT_S = 3.0
STATE_TIMEOUT_S = 20.0

ODD_KEYS = [
    '<script>alert("x")</script>',
    "a/layout",
    "layout/layout/layout",
    "100% & 'quotes' \"double\"",
    "a/../../etc/passwd",
    "?query#fragment &amp;",
    "ключ/☃/🙂",
    "spaces  and\ttab",
    "k" * 1024,
]


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    return ClusterOptions(
        gateway_args=(
            "--stripe-size",
            str(STRIPE),
            "--node-timeout",
            str(NODE_TIMEOUT_S),
            "--node-suspect",
            "1.5",
            "--no-repair",
        ),
        env={
            "DISTSTORAGE_GATEWAY_SEGMENT_MAX_STRIPES": str(SEGMENT_STRIPES),
            "DISTSTORAGE_GATEWAY_MULTIPART_MIN_PART_BYTES": "0",
        },
    )


@pytest.fixture(autouse=True)
def nodes_back(cluster: LocalCluster, http: Client) -> Iterator[None]:
    yield
    restore_nodes(cluster, http)


def layout_path(key: str, safe: str = "/", **query: str | int) -> str:
    path = f"/_/objects/{urllib.parse.quote(key, safe=safe)}/layout"
    return f"{path}?{urllib.parse.urlencode(query)}" if query else path


def layout(http: Client, key: str, safe: str = "/", **query: str | int) -> dict[str, Any]:
    response = http.request("GET", layout_path(key, safe, **query))
    assert response.status == 200, (response.status, response.body[:300])
    document: dict[str, Any] = response.json()
    return document


def put(http: Client, key: str, data: bytes, policy: str | None = "ec:4+2") -> None:
    headers = {"X-Redundancy": policy} if policy else {}
    created = http.put(key, data, headers)
    assert created.status == 201, created.body


def shards_by_state(document: dict[str, Any]) -> dict[str, set[tuple[int, int]]]:
    """state → {(segment position, shard index)}"""
    found: dict[str, set[tuple[int, int]]] = {}
    for position, segment in enumerate(document["segments"], start=document["start"]):
        for shard in segment["shards"]:
            found.setdefault(shard["state"], set()).add((position, shard["shard_index"]))
    return found


def test_a_healthy_object_shows_every_shard_where_the_metadata_puts_it(
    cluster: LocalCluster, http: Client
) -> None:
    data = random_bytes(6 * SEGMENT + 5)
    put(http, "layout/healthy", data)
    document = layout(http, "layout/healthy", limit=1000)
    assert document["key"] == "layout/healthy"
    assert document["bucket"] == "default"
    assert (document["size"], document["md5"]) == (len(data), md5_hex(data))
    assert document["etag"] == f'"{md5_hex(data)}"'
    assert document["redundancy"] == "ec:4+2"
    assert (document["stripe_size"], document["segment_stripes"]) == (STRIPE, SEGMENT_STRIPES)
    assert (document["inline"], document["parts"], document["inline_parts"]) == (False, 0, 0)
    assert (document["segment_count"], document["next_start"]) == (7, None)
    segments = document["segments"]
    assert [s["segment_index"] for s in segments] == list(range(7))
    assert [s["offset"] for s in segments] == [i * SEGMENT for i in range(7)]
    assert sum(s["size"] for s in segments) == len(data)
    assert [s["stripes"] for s in segments] == [2] * 6 + [1]
    ids = node_ids(cluster)
    addresses = {n["id"]: n["address"] for n in http.nodes()}
    placed = {(c.segment, c.shard): c for c in object_chunks(cluster, "layout/healthy")}
    for segment in segments:
        assert segment["part_index"] is None
        assert (segment["total_shards"], segment["needed_to_read"]) == (6, 4)
        assert (segment["usable_shards"], segment["spare_nodes"]) == (6, 2)
        assert segment["full_spare_nodes"] == 2
        assert [s["shard_index"] for s in segment["shards"]] == list(range(6))
        for shard in segment["shards"]:
            chunk = placed[(segment["segment_index"], shard["shard_index"])]
            assert ids[shard["node"]] == chunk.node
            assert shard["chunk_id"] == chunk.path.name
            assert shard["size"] > 0
            assert shard["node_address"] == addresses[shard["node"]]
            assert (shard["state"], shard["chunk_state"]) == ("ok", "ok")
            assert (shard["node_state"], shard["node_lifecycle"]) == ("up", "active")
        # Six shards of one size on six distinct nodes.
        assert len({s["node"] for s in segment["shards"]}) == 6
        assert len({s["size"] for s in segment["shards"]}) == 1


def test_pages_walk_every_segment_once(http: Client) -> None:
    put(http, "layout/paged", random_bytes(6 * SEGMENT + 5))
    whole = layout(http, "layout/paged", limit=1000)
    pages = []
    start: int | None = 0
    while start is not None:
        page = layout(http, "layout/paged", start=start, limit=3)
        assert (page["start"], page["limit"], page["segment_count"]) == (start, 3, 7)
        pages.append(page)
        start = page["next_start"]
    assert [len(p["segments"]) for p in pages] == [3, 3, 1]
    assert [s for p in pages for s in p["segments"]] == whole["segments"]
    past = layout(http, "layout/paged", start=50)
    assert (past["segments"], past["next_start"]) == ([], None)


def test_shards_on_a_killed_node_show_down(cluster: LocalCluster, http: Client) -> None:
    put(http, "layout/down", random_bytes(3 * SEGMENT))
    victim = next(c for c in object_chunks(cluster, "layout/down") if c.segment == 0)
    victim_id = next(i for i, index in node_ids(cluster).items() if index == victim.node)
    Faults(cluster).kill_node(victim.node)
    document: dict[str, Any] = {}

    def shows_down() -> bool:
        document.update(layout(http, "layout/down"))
        return bool(shards_by_state(document).get("down"))

    assert wait_until(shows_down, STATE_TIMEOUT_S, 0.3), document
    for segment in document["segments"]:
        for shard in segment["shards"]:
            on_victim = shard["node"] == victim_id
            assert shard["state"] == ("down" if on_victim else "ok"), shard
            assert shard["node_state"] == ("down" if on_victim else "up"), shard
            assert shard["chunk_state"] == "ok"
        hit = any(s["node"] == victim_id for s in segment["shards"])
        assert (segment["usable_shards"], segment["spare_nodes"]) == ((5, 1) if hit else (6, 2))
    restore_nodes(cluster, http)
    assert wait_until(
        lambda: set(shards_by_state(layout(http, "layout/down"))) == {"ok"}, STATE_TIMEOUT_S, 0.3
    )


def test_a_corrupt_chunk_found_by_a_read_shows_damaged(cluster: LocalCluster, http: Client) -> None:
    data = random_bytes(SEGMENT)
    put(http, "layout/corrupt", data)
    # A read tries the data shards first: shard 0 is always read.
    victim = next(c for c in object_chunks(cluster, "layout/corrupt") if c.shard == 0)
    Faults.flip_byte(victim.path)
    document: dict[str, Any] = {}

    def shows_damaged() -> bool:
        got = http.get("layout/corrupt")
        assert (got.status, md5_hex(got.body)) == (200, md5_hex(data))
        document.update(layout(http, "layout/corrupt"))
        return bool(shards_by_state(document).get("damaged"))

    assert wait_until(shows_damaged, STATE_TIMEOUT_S, 0.3), document
    assert shards_by_state(document) == {"damaged": {(0, 0)}, "ok": {(0, i) for i in range(1, 6)}}
    (segment,) = document["segments"]
    damaged = segment["shards"][0]
    assert (damaged["chunk_state"], damaged["node_state"]) == ("damaged", "up")
    assert damaged["chunk_id"] == victim.path.name
    assert (segment["usable_shards"], segment["spare_nodes"]) == (5, 1)


def test_an_object_completed_from_parts_shows_its_parts_segments(
    cluster: LocalCluster, http: Client
) -> None:
    s3 = s3_client(cluster)
    s3.create_bucket(Bucket="layout-parts")
    # Under the default ec:4+2: a small part is replicated, a larger one coded, a tiny one
    # kept inline in the database.
    parts = [random_bytes(2 * SEGMENT + 100), random_bytes(5 * SEGMENT), b"tail"]
    upload_in_parts(s3, "layout-parts", "joined <&> key", parts)
    document = layout(http, "joined <&> key", bucket="layout-parts", limit=4)
    assert (document["bucket"], document["key"]) == ("layout-parts", "joined <&> key")
    assert document["size"] == sum(map(len, parts))
    assert document["etag"].endswith('-3"')
    assert (document["parts"], document["inline_parts"], document["inline"]) == (3, 1, False)
    assert document["segment_count"] == 3 + 5
    segments = list(document["segments"])
    start = document["next_start"]
    while start is not None:
        page = layout(http, "joined <&> key", bucket="layout-parts", start=start, limit=4)
        segments.extend(page["segments"])
        start = page["next_start"]
    assert [(s["part_index"], s["segment_index"]) for s in segments] == [
        *((0, i) for i in range(3)),
        *((1, i) for i in range(5)),
    ]
    assert [s["offset"] for s in segments] == [
        *(i * SEGMENT for i in range(3)),
        *(len(parts[0]) + i * SEGMENT for i in range(5)),
    ]
    assert [s["size"] for s in segments[:3]] == [SEGMENT, SEGMENT, 100]
    assert {s["redundancy"] for s in segments[:3]} == {"replicate:3"}
    assert {s["redundancy"] for s in segments[3:]} == {"ec:4+2"}
    for segment in segments:
        shards = segment["total_shards"]
        assert [s["state"] for s in segment["shards"]] == ["ok"] * shards
        assert (
            segment["spare_nodes"]
            == segment["full_spare_nodes"]
            == shards - (1 if shards == 3 else 4)
        )
    # The same object is not in the native API's bucket.
    missing = http.request("GET", layout_path("joined <&> key"))
    assert (missing.status, error_code(missing)) == (404, "object_not_found")


def test_an_inline_object_says_so(http: Client) -> None:
    put(http, "layout/inline", b"small", policy=None)
    document = layout(http, "layout/inline")
    assert (document["inline"], document["redundancy"], document["size"]) == (True, "inline", 5)
    assert (document["segment_count"], document["segments"], document["next_start"]) == (
        0,
        [],
        None,
    )


@pytest.mark.parametrize("key", ODD_KEYS)
def test_keys_are_data_not_paths(http: Client, key: str) -> None:
    put(http, key, b"odd", policy=None)
    for safe in ("/", ""):
        assert layout(http, key, safe)["key"] == key


def test_an_odd_key_with_chunks(http: Client) -> None:
    key = ODD_KEYS[0] + "/layout"
    put(http, key, random_bytes(SEGMENT + 1))
    document = layout(http, key, safe="")
    assert (document["key"], document["segment_count"]) == (key, 2)


def test_errors(cluster: LocalCluster, http: Client) -> None:
    put(http, "layout/there", b"x", policy=None)
    cases = [
        ("GET", layout_path("layout/nowhere"), 404, "object_not_found"),
        ("GET", layout_path("layout/there", bucket="no-such-bucket"), 404, "object_not_found"),
        ("GET", layout_path("layout/there", limit=0), 400, "invalid_request"),
        ("GET", layout_path("layout/there", start="x"), 400, "invalid_request"),
        ("GET", "/_/objects/%ff/layout", 400, "invalid_key"),
        ("POST", layout_path("layout/there"), 405, "method_not_allowed"),
    ]
    for method, path, status, code in cases:
        response = http.request(method, path)
        assert (response.status, error_code(response)) == (status, code), path
    unsigned = gateway_client(cluster.url, credentials=None).request(
        "GET", layout_path("layout/there")
    )
    assert (unsigned.status, error_code(unsigned)) == (403, "access_denied")
