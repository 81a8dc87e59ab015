"""Node faults under real processes: killed, paused, corrupted or missing chunks.

The cluster runs with ``--node-timeout 2`` so that the gateway notices a dead node quickly.
After every test the ``healed`` fixture resumes paused nodes, restarts killed ones and waits
until all six are live again, so the tests do not depend on each other's damage.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from conftest import (
    DEFAULT_STRIPE,
    MIB,
    ChunkLocation,
    ClusterOptions,
    chunk_files,
    error_code,
    md5_hex,
    object_chunks,
    parse_raw_response,
    random_bytes,
    restore_nodes,
    signed_head,
    temp_files,
    wait_live_nodes,
    wait_until,
    wait_writable,
)

from diststorage.client import Client, TransportError
from diststorage.local import LocalCluster
from diststorage.testing import Faults

NODE_TIMEOUT_S = 2.0
STRIPE = DEFAULT_STRIPE
# A read around a paused node costs one block deadline (2 s) and a fallback; a few-MiB
# object must come back well within this.
PAUSED_READ_BOUND_S = 10.0


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    # Repair is off: these tests damage chunk files they located once and check reads
    # around them; tests/faults/test_self_healing.py covers repair.
    return ClusterOptions(gateway_args=("--node-timeout", str(NODE_TIMEOUT_S), "--no-repair"))


@dataclass(frozen=True)
class Stored:
    key: str
    policy: str
    data: bytes

    @property
    def md5(self) -> str:
        return md5_hex(self.data)


@pytest.fixture(scope="module")
def objects(http: Client) -> dict[str, Stored]:
    specs = [
        ("faults/ec-one-stripe", "ec:4+2", STRIPE * 3 // 4 + 7),
        ("faults/ec-three-stripes", "ec:4+2", 2 * STRIPE + STRIPE // 4 + 1),
        ("faults/ec-small", "ec:4+2", 1000),
        ("faults/replicas", "replicate:3", 5 * MIB + 3),
        ("faults/replicas-small", "replicate:3", 10),
    ]
    stored = {}
    for key, policy, size in specs:
        data = random_bytes(size)
        response = http.put(key, data, {"X-Redundancy": policy})
        assert response.status == 201, response.body
        stored[key] = Stored(key, policy, data)
    return stored


@pytest.fixture(autouse=True)
def healed(cluster: LocalCluster, http: Client) -> Iterator[None]:
    yield
    restore_nodes(cluster, http)
    wait_writable(cluster, http)


def assert_all_readable(http: Client, objects: dict[str, Stored]) -> dict[str, float]:
    """GETs every object; returns how long each took."""
    took = {}
    for stored in objects.values():
        started = time.monotonic()
        got = http.get(stored.key)
        took[stored.key] = time.monotonic() - started
        assert got.status == 200, (stored.key, got.status, got.body[:300])
        assert md5_hex(got.body) == stored.md5, stored.key
        assert got.header("ETag") == f'"{stored.md5}"'
    return took


def assert_ranges_readable(http: Client, objects: dict[str, Stored]) -> None:
    """A slice from the middle of every object (crossing a stripe boundary where there is one)."""
    for stored in objects.values():
        size = len(stored.data)
        first, last = size // 3, min(size - 1, size // 3 + STRIPE)
        got = http.get(stored.key, {"Range": f"bytes={first}-{last}"})
        assert got.status == 206, (stored.key, got.status, got.body[:300])
        assert got.body == stored.data[first : last + 1], stored.key


def shards_of(cluster: LocalCluster, key: str) -> list[ChunkLocation]:
    """The chunks of a one-segment object, indexed by shard."""
    chunks = object_chunks(cluster, key)
    assert [(c.segment, c.shard) for c in chunks] == [(0, i) for i in range(len(chunks))]
    assert all(c.path.is_file() for c in chunks), chunks
    return chunks


def shard_holder(cluster: LocalCluster, key: str, shard: int) -> ChunkLocation:
    return shards_of(cluster, key)[shard]


# -- dead and paused nodes -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "shard"),
    [("faults/ec-three-stripes", 0), ("faults/ec-three-stripes", 3), ("faults/replicas", 0)],
    ids=["ec-data-shard-0", "ec-data-shard-3", "replica-0"],
)
def test_sigkill_one_node(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored], key: str, shard: int
) -> None:
    victim = shard_holder(cluster, key, shard).node
    Faults(cluster).kill_node(victim)
    # At once, while the gateway still believes the node is live...
    assert_all_readable(http, objects)
    assert_ranges_readable(http, objects)
    # ...and once it has noticed.
    wait_live_nodes(http, cluster.nodes - 1, timeout_s=15)
    assert_all_readable(http, objects)
    assert_ranges_readable(http, objects)


@pytest.mark.parametrize(
    ("key", "shard"),
    [("faults/ec-three-stripes", 0), ("faults/replicas", 0)],
    ids=["ec-data-shard-0", "replica-0"],
)
def test_sigstop_one_node(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored], key: str, shard: int
) -> None:
    victim = shard_holder(cluster, key, shard).node
    target = objects[key]
    Faults(cluster).pause_node(victim)
    try:
        started = time.monotonic()
        got = http.get(target.key)
        first_took = time.monotonic() - started
        assert got.status == 200, got.body[:300]
        assert md5_hex(got.body) == target.md5
        took = assert_all_readable(http, objects)
        # Still paused, and by now past the node timeout: reads avoid it from the start.
        assert wait_until(lambda: http.health()[1]["live_nodes"] == cluster.nodes - 1, 15.0)
        again = assert_all_readable(http, objects)
    finally:
        Faults(cluster).resume_node(victim)
    print(f"paused node {victim}: first GET {first_took:.2f}s, then {took}, later {again}")
    assert first_took < PAUSED_READ_BOUND_S, first_took
    assert max(took.values()) < PAUSED_READ_BOUND_S, took
    assert max(again.values()) < PAUSED_READ_BOUND_S, again
    # One deadline per paused node, not one per stripe: three stripes cost about one timeout.
    assert first_took < 3 * 2.0, first_took


def test_sigstop_node_recovers(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    """A paused node that resumes is live again and its shards are used again."""
    victim = shard_holder(cluster, "faults/ec-one-stripe", 1).node
    Faults(cluster).pause_node(victim)
    try:
        wait_live_nodes(http, cluster.nodes - 1, timeout_s=15)
        assert_all_readable(http, objects)
    finally:
        Faults(cluster).resume_node(victim)
    wait_live_nodes(http, cluster.nodes, timeout_s=15)
    assert_all_readable(http, objects)
    # A write needing all six nodes succeeds again.
    data = random_bytes(MIB)
    assert http.put("faults/after-pause", data).status == 201
    assert http.get("faults/after-pause").body == data


# A write that meets a paused node waits for one RPC deadline (5 s), then gives up.
PAUSED_WRITE_BOUND_S = 15.0


def test_write_to_paused_node(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    """ec:4+2 on six nodes, one of them paused: the shard bound for it is dropped after one
    RPC deadline and the write commits degraded (queued for repair) on the other five."""
    victim = 4
    others = [i for i in range(cluster.nodes) if i != victim]
    keys_before = http.list_keys()
    data = random_bytes(2 * MIB + 5)
    Faults(cluster).pause_node(victim)
    try:
        started = time.monotonic()
        response = http.put("faults/paused-write", data, {"X-Redundancy": "ec:4+2"})
        took = time.monotonic() - started
    finally:
        Faults(cluster).resume_node(victim)
    print(f"paused write: {response.status} in {took:.2f}s: {response.body[:200]!r}")
    assert took < PAUSED_WRITE_BOUND_S, took
    assert response.status == 201, response.body
    assert http.get("faults/paused-write").body == data
    assert http.list_keys() == sorted([*keys_before, "faults/paused-write"])
    located = object_chunks(cluster, "faults/paused-write")
    assert len(located) == 5, located
    assert all(c.node in others for c in located), located
    assert http.repair()["segments_queued"] >= 1
    # The resumed node drops its half-written chunk.
    assert wait_until(lambda: not temp_files(cluster), 10.0), temp_files(cluster)
    assert_all_readable(http, objects)


# -- damaged chunk files ---------------------------------------------------------------------


DAMAGE_CASES = {
    "ec-one-stripe": ("faults/ec-one-stripe", [[0], [1], [3], [4], [5], [0, 1], [2, 3], [0, 5]]),
    "ec-three-stripes": ("faults/ec-three-stripes", [[0], [2], [4], [1, 3], [0, 4]]),
    "ec-small": ("faults/ec-small", [[0], [3], [0, 2]]),
    "replicas": ("faults/replicas", [[0], [1], [2], [0, 1], [1, 2]]),
    "replicas-small": ("faults/replicas-small", [[0], [0, 1]]),
}


@pytest.mark.parametrize("case", DAMAGE_CASES.values(), ids=list(DAMAGE_CASES))
def test_corrupt_chunk_bytes(
    cluster: LocalCluster,
    http: Client,
    objects: dict[str, Stored],
    case: tuple[str, list[list[int]]],
) -> None:
    key, shard_sets = case
    chunks = shards_of(cluster, key)
    for shards in shard_sets:
        with Faults.corrupted([chunks[s].path for s in shards]):
            got = http.get(key)
            assert got.status == 200, (shards, got.body[:300])
            assert md5_hex(got.body) == objects[key].md5, shards
    assert_all_readable(http, objects)


@pytest.mark.parametrize("case", DAMAGE_CASES.values(), ids=list(DAMAGE_CASES))
def test_missing_chunk_file(
    cluster: LocalCluster,
    http: Client,
    objects: dict[str, Stored],
    case: tuple[str, list[list[int]]],
) -> None:
    key, shard_sets = case
    chunks = shards_of(cluster, key)
    # Beside the cluster's folder, so that it goes when the cluster does.
    keep = cluster.data_dir.parent / "moved-chunks"
    keep.mkdir(exist_ok=True)
    for shards in shard_sets:
        with Faults.removed([chunks[s].path for s in shards], keep):
            got = http.get(key)
            assert got.status == 200, (shards, got.body[:300])
            assert md5_hex(got.body) == objects[key].md5, shards
    assert_all_readable(http, objects)


def test_corrupt_trailer(cluster: LocalCluster, http: Client, objects: dict[str, Stored]) -> None:
    """Damage at the very end of a chunk file (its trailer) is caught as well."""
    key = "faults/ec-one-stripe"
    chunk = shards_of(cluster, key)[0]
    with Faults.corrupted([chunk.path], at=0.9999999):
        got = http.get(key)
        assert got.status == 200
        assert md5_hex(got.body) == objects[key].md5


# A damaged read is decided by checksums, not deadlines: it must end quickly either way.
DAMAGED_READ_BOUND_S = 10.0


@dataclass(frozen=True)
class Outcome:
    status: int
    body: bytes = field(repr=False)  # whatever arrived after the headers
    complete: bool  # the whole Content-Length arrived
    hung: bool  # the connection neither finished nor closed within DAMAGED_READ_BOUND_S


def read_outcome(http: Client, key: str) -> Outcome:
    """A GET over a raw socket that keeps every byte that arrives, even from a broken answer."""
    received = bytearray()
    hung = False
    with socket.create_connection((http.host, http.port), timeout=DAMAGED_READ_BOUND_S) as sock:
        sock.sendall(signed_head("GET", f"/{key}", http.port, {"Connection": "close"}))
        deadline = time.monotonic() + DAMAGED_READ_BOUND_S
        try:
            while piece := sock.recv(1 << 20):
                received += piece
                if time.monotonic() > deadline:
                    hung = True
                    break
        except TimeoutError:
            hung = True
        except ConnectionResetError:
            pass
    assert received, "no answer at all"
    status, headers, body = parse_raw_response(bytes(received))
    complete = len(body) == int(headers.get("content-length", -1))
    return Outcome(status, body, complete, hung)


def first_difference(got: bytes, expected: bytes) -> int:
    pairs = enumerate(zip(got, expected, strict=False))
    return next((i for i, (a, b) in pairs if a != b), min(len(got), len(expected)))


DAMAGE_BEYOND_REPAIR = {
    # id: (key, shards to corrupt, where in each file, whether the first stripe is hit)
    "ec-first-stripe": ("faults/ec-one-stripe", [0, 1, 2], 0.5, True),
    "replicas-first-stripe": ("faults/replicas", [0, 1, 2], 0.2, True),
    "ec-second-stripe": ("faults/ec-three-stripes", [1, 3, 5], 0.5, False),
}


@pytest.mark.parametrize("case", DAMAGE_BEYOND_REPAIR.values(), ids=list(DAMAGE_BEYOND_REPAIR))
def test_too_much_damage_is_never_served(
    cluster: LocalCluster,
    http: Client,
    objects: dict[str, Stored],
    case: tuple[str, list[int], float, bool],
) -> None:
    """More damage than the redundancy covers: an error, or a body cut off after the good
    stripes, promptly; never wrong bytes, never a stalled connection."""
    key, shards, at, first_stripe = case
    chunks = shards_of(cluster, key)
    data = objects[key].data
    with Faults.corrupted([chunks[s].path for s in shards], at):
        started = time.monotonic()
        outcome = read_outcome(http, key)
        took = time.monotonic() - started
    if first_stripe:
        # Nothing good to send: an error status before any byte.
        assert outcome.status == 503, outcome
        assert outcome.complete, outcome
        assert b'"data_loss"' in outcome.body, outcome.body[:300]
    else:
        assert outcome.status in (200, 503), outcome
        if outcome.status == 200:
            # The good stripes go out, then the body breaks off: never a byte that is not
            # the object's, never the whole length.
            if not data.startswith(outcome.body):
                at_byte = first_difference(outcome.body, data)
                pytest.fail(
                    f"wrong bytes served from offset {at_byte}: "
                    f"{outcome.body[at_byte : at_byte + 120]!r}"
                )
            assert not outcome.complete
            assert len(outcome.body) < len(data)
    assert not outcome.hung, f"GET {key} stalled for {took:.1f}s: {outcome.status}"
    assert_all_readable(http, objects)


# -- writes the cluster cannot take ----------------------------------------------------------


def test_write_without_enough_live_nodes(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    """ec:4+2 asked for on four live nodes: 503, and nothing stored (the default would be
    written degraded, so the gateway reports itself degraded, not down)."""
    Faults(cluster).kill_node(4)
    Faults(cluster).kill_node(5)
    wait_live_nodes(http, cluster.nodes - 2, timeout_s=15)
    status, health = http.health()
    assert status == 200
    assert health["status"] == "degraded"
    assert health["needed_nodes"] == 4
    assert health["live_nodes"] == cluster.nodes - 2
    assert health["total_nodes"] == cluster.nodes

    live = range(cluster.nodes - 2)
    keys_before = http.list_keys()
    chunks_before = chunk_files(cluster, live)
    for body in (random_bytes(2 * MIB), iter([b"chunked ", b"body"])):
        response = http.put("faults/unplaceable", body, {"X-Redundancy": "ec:4+2"})
        assert response.status == 503, response.body
        assert error_code(response) == "not_enough_nodes"
    time.sleep(1.0)
    assert http.list_keys() == keys_before
    assert not chunk_files(cluster, live) - chunks_before
    assert not temp_files(cluster, live)

    # A narrower policy still fits on the live nodes, and everything stored still reads.
    data = random_bytes(MIB + 1)
    assert http.put("faults/narrow", data, {"X-Redundancy": "replicate:3"}).status == 201
    assert http.get("faults/narrow").body == data
    assert_all_readable(http, objects)


def test_node_killed_during_large_upload(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    """Either the upload succeeds whole (201, right bytes), or it fails and leaves nothing."""
    victim = 2
    size = 48 * MIB
    data = random_bytes(size)
    live = [i for i in range(cluster.nodes) if i != victim]
    killed = False

    def first_block_everywhere() -> bool:
        """Block 0 of this upload sits in a temp file on every node: the streams are idle."""
        files = temp_files(cluster)
        return len(files) == cluster.nodes and all(f.stat().st_size >= STRIPE // 4 for f in files)

    def body() -> Iterator[bytes]:
        nonlocal killed
        yield data[:STRIPE]
        # Mid-stream for real: the first stripe is on the nodes, the rest still to come.
        if wait_until(first_block_everywhere, 10.0):
            Faults(cluster).kill_node(victim)
            killed = True
            # Let the gateway's stream to the dead node break before more data comes.
            time.sleep(1.0)
        for offset in range(STRIPE, size, MIB):
            yield data[offset : offset + MIB]

    status: int | None
    answer = b""
    try:
        response = http.put(
            "faults/interrupted", body(), {"Content-Length": str(size), "X-Redundancy": "ec:4+2"}
        )
        status, answer = response.status, response.body
    except TransportError:
        status = None  # the gateway gave up and closed the connection
    print(f"upload with a node killed mid-way: {status} {answer[:200]!r}")
    assert killed, f"the upload never reached the nodes: {status} {answer[:300]!r}"

    # Five nodes are left, enough for a degraded ec:4+2 write: the upload goes on without
    # the dead node and commits whole.
    assert status == 201, (status, answer[:300])
    got = http.get("faults/interrupted")
    assert got.status == 200
    assert md5_hex(got.body) == md5_hex(data)
    assert not temp_files(cluster, live)
    assert http.repair()["segments_queued"] >= 1
    assert_all_readable(http, objects)
