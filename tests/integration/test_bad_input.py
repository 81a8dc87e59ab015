"""Bad requests get their status and a JSON error body, and store nothing.

"Nothing" is checked where it would show: the listing, the nodes' chunk folders (committed
chunks) and their temp folders (chunks being written). The module's cluster caps objects at
8 MiB (through the gateway's environment, as no flag sets it) so that 413 is cheap to reach; a
second cluster of nodes with 8 MiB of room each answers the 507 cases.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import (
    MIB,
    ClusterOptions,
    all_files,
    chunk_files,
    cluster_in,
    error_code,
    gateway_client,
    md5_hex,
    parse_raw_response,
    random_bytes,
    raw_exchange,
    signed_head,
    temp_files,
    wait_until,
)

from diststorage.client import Client, Response
from diststorage.local import LocalCluster

MAX_OBJECT = 8 * MIB
NODE_CAPACITY = 8 * MIB
CHUNK_NAME = re.compile(r"^[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    return ClusterOptions(env={"DISTSTORAGE_GATEWAY_MAX_OBJECT_BYTES": str(MAX_OBJECT)})


class Stored:
    """What the cluster holds right now, to compare with after a bad request."""

    def __init__(self, cluster: LocalCluster, http: Client) -> None:
        self.cluster = cluster
        self.http = http
        self.keys = http.list_keys()
        self.chunks = chunk_files(cluster)

    def assert_unchanged(self, settle_s: float = 3.0, quiet_s: float = 0.0) -> None:
        """Same listing; no chunk file added, none left in flight (rollback gets time).

        ``quiet_s`` first lets a request the client abandoned reach the nodes, if it would.
        """
        time.sleep(quiet_s)

        # (Chunks may go meanwhile: earlier tests' garbage being deleted.)
        def settled() -> bool:
            return not (chunk_files(self.cluster) - self.chunks) and not temp_files(self.cluster)

        settled_in_time = wait_until(settled, settle_s)
        assert self.http.list_keys() == self.keys
        assert settled_in_time, (
            sorted(map(str, chunk_files(self.cluster) - self.chunks)),
            sorted(map(str, temp_files(self.cluster))),
        )


@pytest.fixture
def stored(cluster: LocalCluster, http: Client) -> Stored:
    return Stored(cluster, http)


def assert_error(response: Response, status: int, code: str) -> None:
    assert response.status == status, (response.status, response.body[:300])
    assert error_code(response) == code


# -- keys ------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/%ff", "/a/%c3%28", "/%ed%a0%80", "/ok/%80x"])
@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_invalid_utf8_key(http: Client, stored: Stored, path: str, method: str) -> None:
    assert_error(http.request(method, path, b"data"), 400, "invalid_key")
    stored.assert_unchanged()


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_invalid_utf8_key_on_read(http: Client, method: str) -> None:
    response = http.request(method, "/%ff")
    assert response.status == 400
    if method != "HEAD":
        assert error_code(response) == "invalid_key"


@pytest.mark.parametrize(
    "key",
    ["k" * 1025, "é" * 512 + "k", "😀" * 256 + "k"],
    ids=["1025-ascii", "1025-two-byte", "1025-four-byte"],
)
def test_key_too_long(http: Client, stored: Stored, key: str) -> None:
    assert len(key.encode()) == 1025
    assert_error(http.put(key, b"data"), 400, "invalid_key")
    stored.assert_unchanged()


def test_longest_key_is_accepted(http: Client) -> None:
    key = "é" * 511 + "kk"
    assert len(key.encode()) == 1024
    created = http.put(key, b"long key")
    assert created.status == 201
    assert created.json()["key"] == key
    assert http.get(key).body == b"long key"
    assert http.delete(key).status == 204


@pytest.mark.parametrize("path", ["/_/x", "/_/deeper/key", "/%5F/x", "/_%2Fx"])
@pytest.mark.parametrize("method", ["PUT", "POST", "GET", "DELETE"])
def test_reserved_key(http: Client, stored: Stored, path: str, method: str) -> None:
    """Keys under ``_/`` belong to system routes: naming one is a bad key, not a missing route."""
    body = b"data" if method in ("PUT", "POST") else None
    assert_error(http.request(method, path, body), 400, "invalid_key")
    stored.assert_unchanged()


def test_empty_key_put(http: Client, stored: Stored) -> None:
    response = http.request("PUT", "/", b"data")
    assert response.status in (400, 405), response.body
    error_code(response)
    stored.assert_unchanged()


# -- headers and bodies ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "ec:4",
        "raid5",
        "ec:0+2",
        "replicate:0",
        "ec:30+5",
        "replicate:33",
        "",
        "ec:4+2,replicate:3",
        "EC:4+2",
        "ec:-1+2",
        "ec:4+2x",
    ],
)
def test_bad_redundancy(http: Client, stored: Stored, spec: str) -> None:
    response = http.put("bad/redundancy", b"data", {"X-Redundancy": spec})
    assert_error(response, 400, "invalid_redundancy")
    stored.assert_unchanged()


@pytest.mark.parametrize("spec", ["ec:9+9", "replicate:7", "ec:7+0"])
def test_policy_wider_than_cluster(http: Client, stored: Stored, spec: str) -> None:
    # Wider than the six member nodes, beyond the gateway's 3x overhead, or without a spare
    # shard: the client's to fix (tests/integration/test_redundancy_limits.py).
    response = http.put("bad/too-wide", random_bytes(1000), {"X-Redundancy": spec})
    assert_error(response, 400, "invalid_redundancy")
    stored.assert_unchanged()


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_length_required(gateway_port: int, stored: Stored, method: str) -> None:
    raw = raw_exchange(
        gateway_port, signed_head(method, "/bad/no-length", gateway_port, {"Connection": "close"})
    )
    status, headers, body = parse_raw_response(raw)
    assert status == 411, raw
    assert "application/json" in headers["content-type"]
    assert b'"length_required"' in body
    stored.assert_unchanged()


def test_payload_too_large(gateway_port: int, stored: Stored) -> None:
    """Answered from the headers: the body need not be sent."""
    raw = raw_exchange(
        gateway_port,
        signed_head(
            "PUT",
            "/bad/too-large",
            gateway_port,
            {"Connection": "close", "Content-Length": str(MAX_OBJECT + 1)},
        ),
        read_timeout_s=5,
    )
    status, _, body = parse_raw_response(raw)
    assert status == 413, raw
    assert b'"payload_too_large"' in body
    stored.assert_unchanged()


def test_largest_object_is_accepted(http: Client) -> None:
    data = random_bytes(MAX_OBJECT)
    created = http.put("bad/largest", data)
    assert created.status == 201, created.body
    assert created.json()["md5"] == md5_hex(data)
    assert http.delete("bad/largest").status == 204


def test_chunked_body_over_the_limit(http: Client, stored: Stored) -> None:
    """A chunked body of unknown length must not get around the object size limit."""

    def body() -> Iterator[bytes]:
        for _ in range(MAX_OBJECT // MIB + 1):
            yield random_bytes(MIB)

    response = http.put("bad/chunked-too-large", body())
    assert_error(response, 413, "payload_too_large")
    stored.assert_unchanged()


@pytest.mark.parametrize("ending", ["half-close", "close"])
@pytest.mark.parametrize(
    ("declared", "sent"),
    [(1000, 10), (1000, 0), (MAX_OBJECT, 5 * MIB + 3)],
    ids=["10-of-1000", "0-of-1000", "5MiB-of-8MiB"],
)
def test_body_shorter_than_content_length(
    gateway_port: int, stored: Stored, ending: str, declared: int, sent: int
) -> None:
    """The client announces more than it sends and stops; nothing may be stored.

    With 5 MiB of 8 MiB, a whole stripe reaches the nodes before the body ends: it must be
    rolled back. Over a half-closed connection an answer, if any, is a 400.
    """
    head = signed_head(
        "PUT", f"/bad/short-{ending}-{sent}", gateway_port, {"Content-Length": str(declared)}
    )
    raw = raw_exchange(
        gateway_port,
        head + random_bytes(sent),
        shutdown_write=ending == "half-close",
        close_after_send=ending == "close",
    )
    if raw:
        status, _, body = parse_raw_response(raw)
        assert status == 400, raw[:300]
        assert b'"body_length_mismatch"' in body or b'"client_gone"' in body, body
    stored.assert_unchanged(quiet_s=1.0)


# -- methods and missing things --------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/some/key"),
        ("OPTIONS", "/some/key"),
        ("PUT", "/"),
        ("POST", "/"),
        ("DELETE", "/"),
        ("POST", "/_/health"),
        ("PUT", "/_/health"),
        ("PUT", "/_/nodes"),
        ("DELETE", "/_/nodes"),
    ],
)
def test_method_not_allowed(http: Client, stored: Stored, method: str, path: str) -> None:
    response = http.request(method, path, b"x" if method in ("PUT", "POST", "PATCH") else None)
    assert_error(response, 405, "method_not_allowed")
    assert response.header("Allow")
    stored.assert_unchanged()


def test_not_found(http: Client) -> None:
    assert_error(http.get("no/such/key"), 404, "object_not_found")
    assert_error(http.delete("no/such/key"), 404, "object_not_found")
    head = http.head("no/such/key")
    assert head.status == 404
    assert head.body == b""


def test_conflict(cluster: LocalCluster, http: Client) -> None:
    key = "bad/conflict"
    assert http.put(key, b"first", method="POST").status == 201
    before = Stored(cluster, http)
    assert_error(http.put(key, b"second", method="POST"), 409, "already_exists")
    assert http.get(key).body == b"first"
    before.assert_unchanged()


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "abc", "1.5"])
def test_bad_listing_limit(http: Client, limit: str) -> None:
    assert_error(http.request("GET", f"/?limit={limit}"), 400, "invalid_request")


# -- keys that look like paths ---------------------------------------------------------------

TRAVERSAL = {
    # raw request path → the key it names
    "/../../etc/passwd": "../../etc/passwd",
    "/a/../../b": "a/../../b",
    "/%2e%2e/x": "../x",
    "/%2E%2E/%2E%2E/%2E%2E/tmp/evil": "../../../tmp/evil",
    "/%252e%252e/x": "%2e%2e/x",
    "/..": "..",
    "/.": ".",
    "/./x": "./x",
    "//abs/path": "/abs/path",
    "/..%2F..%2Fescape": "../../escape",
    "/..%5C..%5Cwin": "..\\..\\win",
    "/nul%00byte": "nul\x00byte",
    "/line%0Abreak%0D%0Ax": "line\nbreak\r\nx",
}


@pytest.fixture(scope="module")
def outside_files(cluster: LocalCluster) -> set[Path]:
    return all_files(cluster.data_dir.parent)


@pytest.mark.parametrize("path", list(TRAVERSAL), ids=list(TRAVERSAL.values()))
def test_path_like_keys_are_plain_data(
    cluster: LocalCluster, http: Client, path: str, outside_files: set[Path]
) -> None:
    key = TRAVERSAL[path]
    body = f"plain data for {key!r}".encode()
    before = all_files(cluster.data_dir.parent)
    cwd_before = set(Path.cwd().iterdir())

    created = http.request("PUT", path, body)
    assert created.status == 201, created.body
    assert created.json()["key"] == key
    got = http.request("GET", path)
    assert got.status == 200
    assert got.body == body
    assert http.get(key).body == body  # the same key, spelled the canonical way
    assert key in http.list_keys()

    # New files only where chunks go, named by generated ids; the gateway's own files aside.
    time.sleep(0.2)
    for new in all_files(cluster.data_dir.parent) - before:
        relative = new.relative_to(cluster.data_dir)
        if relative.parts[0] in ("gateway", "logs"):
            continue
        assert re.fullmatch(r"node\d+", relative.parts[0]), new
        assert relative.parts[1] == "chunks", new
        assert CHUNK_NAME.match(relative.name), new
        assert relative.parts[2] == relative.name[:2], new
    assert set(Path.cwd().iterdir()) == cwd_before
    assert not Path("/tmp/evil").exists() or Path("/tmp/evil") in outside_files
    assert not (cluster.data_dir / "etc").exists()
    assert http.request("DELETE", path).status == 204


# -- full nodes (507) ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    # Its own object limit: the module cluster's one is in the environment while it runs.
    options = ClusterOptions(
        node_capacity_bytes=NODE_CAPACITY,
        env={"DISTSTORAGE_GATEWAY_MAX_OBJECT_BYTES": str(1 << 40)},
    )
    with cluster_in(tmp_path_factory.mktemp("small-nodes"), options) as running:
        yield running


def test_object_larger_than_nodes(small_nodes: LocalCluster) -> None:
    http = gateway_client(small_nodes.url)
    before = Stored(small_nodes, http)
    # ec:4+2 puts a quarter of the object on each node: 40 MiB → 10 MiB each.
    response = http.put("full/too-big", random_bytes(40 * MIB))
    assert_error(response, 507, "insufficient_storage")
    before.assert_unchanged()


def test_nodes_fill_up(small_nodes: LocalCluster) -> None:
    """Keep writing until the nodes are full: 507, and every earlier object still reads."""
    http = gateway_client(small_nodes.url)
    written: dict[str, bytes] = {}
    for index in range(40):
        data = random_bytes(3 * MIB)
        key = f"full/{index}"
        before = Stored(small_nodes, http)
        response = http.put(key, data, {"X-Redundancy": "replicate:3"})
        if response.status == 201:
            written[key] = data
            continue
        assert_error(response, 507, "insufficient_storage")
        before.assert_unchanged()
        break
    else:
        pytest.fail("48 MiB of node space took 120 MiB of replicas")
    # 6 nodes of 8 MiB hold at most 16 MiB of replicate:3 data.
    assert 1 <= len(written) <= 5
    for key, data in written.items():
        got = http.get(key)
        assert got.status == 200
        assert got.body == data
    # Freed space is usable again.
    for key in written:
        assert http.delete(key).status == 204
    assert wait_until(lambda: not chunk_files(small_nodes), 10.0)
    retry = random_bytes(3 * MIB)

    def fits() -> bool:
        response = http.put("full/after-delete", retry, {"X-Redundancy": "replicate:3"})
        return response.status == 201

    assert wait_until(fits, 10.0, 1.0)
    assert http.get("full/after-delete").body == retry


def test_small_chunked_upload_on_small_nodes(small_nodes: LocalCluster) -> None:
    """A few bytes of unknown length fit on nodes with megabytes free."""
    http = gateway_client(small_nodes.url)
    data = b"tiny chunked body"
    response = http.put("full/chunked-small", iter([data[:5], data[5:]]))
    assert response.status == 201, response.body
    assert http.get("full/chunked-small").body == data
