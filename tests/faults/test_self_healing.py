"""Self-healing with real processes: degraded writes, repair after node loss, damaged chunks
found by reads and by the scrubber, lost chunk files found by the audit, returning nodes,
abandoned uploads, unreferenced chunks, and node drain / removal / addition with rebalancing.

Faults injected: SIGKILL and SIGSTOP of nodes and the gateway; bytes flipped in, and files
removed from, chunk folders; a file planted in a chunk folder. Every test ends with the
cluster back at full redundancy (no stripe below target) and every object md5-correct.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from conftest import (
    DEFAULT_SEGMENT_STRIPES,
    MIB,
    ClusterOptions,
    chunk_files,
    error_code,
    md5_hex,
    node_ids,
    object_chunks,
    random_bytes,
    restore_nodes,
    start_stalled_upload,
    temp_files,
    wait_live_nodes,
    wait_until,
)

from diststorage.client import Client, TransportError
from diststorage.local import LocalCluster, free_port
from diststorage.testing import Faults

STRIPE = 64 * 1024
NODE_TIMEOUT_S = 3.0
REPAIR_GRACE_S = 3.0
GC_GRACE_S = 4.0
# Generous: repair runs at the bounded rate after the grace period, on a 2-core machine that
# also runs the tests.
HEAL_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    # Seven nodes, so that ec:4+2 (six shards) can be rebuilt in full while one is gone.
    return ClusterOptions(
        nodes=7,
        gateway_args=(
            # Small stripes, so segments (of the default stripe count) are a few MiB: objects
            # here span several, and an upload cut short leaves finished chunks behind.
            "--stripe-size",
            str(STRIPE),
            "--node-timeout",
            str(NODE_TIMEOUT_S),
            "--node-suspect",
            "1.5",
            "--repair-grace",
            str(REPAIR_GRACE_S),
            "--gc-grace",
            str(GC_GRACE_S),
            "--repair-rate",
            str(200 * MIB),
        ),
        node_args=("--scrub-interval", "1", "--scrub-rate", str(64 * MIB)),
    )


@dataclass(frozen=True)
class Stored:
    key: str
    data_md5: str
    size: int


@pytest.fixture(scope="module")
def objects(http: Client) -> dict[str, Stored]:
    """A few objects of each shape, written while every node is up."""
    specs = [
        ("heal/ec-multi-segment", "ec:4+2", 9 * MIB + 5),
        ("heal/ec-small", "ec:4+2", 2000),
        ("heal/replicas", "replicate:3", 5 * MIB + 1),
    ]
    stored = {}
    for key, policy, size in specs:
        data = random_bytes(size)
        assert http.put(key, data, {"X-Redundancy": policy}).status == 201
        stored[key] = Stored(key, md5_hex(data), size)
    return stored


@pytest.fixture(autouse=True)
def healed(cluster: LocalCluster, http: Client, objects: dict[str, Stored]) -> Iterator[None]:
    """After each test: every node running, and the cluster back at full redundancy."""
    yield
    restore_nodes(cluster, http)
    wait_fully_redundant(http)


def repair_status(http: Client) -> dict[str, object]:
    status: dict[str, object] = http.repair()
    return status


def wait_fully_redundant(http: Client, timeout_s: float = HEAL_TIMEOUT_S) -> None:
    last: dict[str, object] = {}

    def done() -> bool:
        last.update(repair_status(http))
        return last["stripes_below_target"] == 0 and last["segments_queued"] == 0

    assert wait_until(done, timeout_s, 0.5), last


def assert_all_readable(http: Client, objects: dict[str, Stored]) -> None:
    for stored in objects.values():
        got = http.get(stored.key)
        assert got.status == 200, (stored.key, got.status, got.body[:300])
        assert md5_hex(got.body) == stored.data_md5, stored.key


def assert_fully_placed(cluster: LocalCluster, key: str, shards: int) -> None:
    """Every segment of the object has all its shards, on distinct running nodes."""
    chunks = object_chunks(cluster, key)
    by_segment: dict[int, list[int]] = {}
    for chunk in chunks:
        by_segment.setdefault(chunk.segment, []).append(chunk.node)
        assert chunk.path.is_file(), chunk
    for segment, nodes in by_segment.items():
        assert len(nodes) == shards, (key, segment, nodes)
        assert len(set(nodes)) == shards, (key, segment, nodes)


def node_states(http: Client) -> dict[str, str]:
    return {n["id"]: n["state"] for n in http.nodes()}


def id_of(cluster: LocalCluster, index: int) -> str:
    return next(node_id for node_id, i in node_ids(cluster).items() if i == index)


# -- liveness ----------------------------------------------------------------------------------


def test_paused_node_goes_suspect_then_down_then_up(cluster: LocalCluster, http: Client) -> None:
    victim = id_of(cluster, 1)
    Faults(cluster).pause_node(1)
    seen: list[str] = []

    def observed(state: str) -> bool:
        current = node_states(http)[victim]
        if not seen or seen[-1] != current:
            seen.append(current)
        return current == state

    assert wait_until(lambda: observed("suspect"), 5.0, 0.1), seen
    assert wait_until(lambda: observed("down"), 5.0, 0.1), seen
    Faults(cluster).resume_node(1)
    assert wait_until(lambda: observed("up"), 5.0, 0.1), seen
    assert seen[:3] == ["up", "suspect", "down"] or seen[:2] == ["suspect", "down"], seen


def test_read_meets_corrupt_and_missing_chunks_and_they_are_rebuilt(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    # First of the read-path tests: no node is penalised yet for an earlier failed read, so
    # the read tries the data shards, damaged ones included.
    key = "heal/ec-multi-segment"
    chunks = object_chunks(cluster, key)
    corrupt, missing = chunks[0], chunks[3]
    Faults.flip_byte(corrupt.path)
    missing.path.unlink()
    assert_all_readable(http, objects)

    def replaced() -> bool:
        now = {c.path for c in object_chunks(cluster, key)}
        if corrupt.path in now or missing.path in now:
            # Another read: one that went around a damaged shard (a node late on a busy
            # machine) did not meet it; the next one may.
            assert_all_readable(http, objects)
            return False
        return True

    assert wait_until(replaced, HEAL_TIMEOUT_S, 0.5), repair_status(http)
    wait_fully_redundant(http)
    assert_fully_placed(cluster, key, 6)
    assert wait_until(lambda: not corrupt.path.exists(), 30.0), corrupt
    assert_all_readable(http, objects)


# -- degraded writes, repair, returning nodes --------------------------------------------------


def test_degraded_writes_are_repaired_and_returning_nodes_reconciled(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    gone, back = 0, 1
    Faults(cluster).kill_node(gone)
    Faults(cluster).kill_node(back)
    wait_live_nodes(http, cluster.nodes - 2, timeout_s=15)

    # Five nodes: ec:4+2 asked for explicitly needs six distinct ones and is refused (503,
    # never squeezed onto five); replicate:3 fits.
    for key, size in [("heal/degraded-ec", 6 * MIB + 3), ("heal/degraded-small", 777)]:
        response = http.put(key, random_bytes(size), {"X-Redundancy": "ec:4+2"})
        assert response.status == 503, response.body
        assert error_code(response) == "not_enough_nodes"
    written = {}
    for key, policy, size in [("heal/degraded-replicas", "replicate:3", MIB)]:
        data = random_bytes(size)
        response = http.put(key, data, {"X-Redundancy": policy})
        assert response.status == 201, response.body
        written[key] = Stored(key, md5_hex(data), size)
        assert not {gone, back} & {c.node for c in object_chunks(cluster, key)}
    # Without X-Redundancy the default ec:4+2 is fitted to the five nodes as ec:3+2: it
    # still survives two more lost nodes, and needs no repair.
    data = random_bytes(2 * MIB + 9)
    response = http.put("heal/fitted", data)
    assert response.status == 201, response.body
    assert response.json()["redundancy"] == "ec:3+2"
    written["heal/fitted"] = Stored("heal/fitted", md5_hex(data), len(data))
    fitted_nodes = [c.node for c in object_chunks(cluster, "heal/fitted")]
    assert len(set(fitted_nodes)) == len(fitted_nodes) == 5, fitted_nodes
    everything = {**objects, **written}
    assert_all_readable(http, everything)
    assert repair_status(http)["stripes_below_target"] != 0

    # One node comes back after the grace period; the other stays lost. Six healthy nodes
    # are enough to bring every stripe back to full redundancy.
    time.sleep(REPAIR_GRACE_S + NODE_TIMEOUT_S)
    stale_on_back = chunk_files(cluster, [back])
    stale_on_gone = chunk_files(cluster, [gone])
    Faults(cluster).restart_node(back)
    wait_live_nodes(http, cluster.nodes - 1, timeout_s=15)
    wait_fully_redundant(http)
    status = repair_status(http)
    assert isinstance(status["bytes_repaired"], int) and status["bytes_repaired"] > 0
    shards = {"heal/replicas": 3, "heal/degraded-replicas": 3, "heal/fitted": 5}
    for key in everything:
        assert_fully_placed(cluster, key, shards.get(key, 6))
        assert gone not in {c.node for c in object_chunks(cluster, key)}, key
    assert_all_readable(http, everything)
    # What repair replaced on the returning node is deleted from it, never read.
    in_use = {c.path for key in everything for c in object_chunks(cluster, key)}
    assert wait_until(lambda: not (stale_on_back - in_use) & chunk_files(cluster, [back]), 60.0)

    # The lost node returns last: everything it held was rebuilt elsewhere and goes.
    Faults(cluster).restart_node(gone)
    wait_live_nodes(http, cluster.nodes, timeout_s=15)
    assert wait_until(lambda: not stale_on_gone & chunk_files(cluster, [gone]), 60.0)
    assert_all_readable(http, everything)
    for key in written:
        assert http.delete(key).status == 204


def test_nodes_down_within_budget_reads_work_and_too_few_refuse_writes(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    Faults(cluster).kill_node(2)
    Faults(cluster).pause_node(3)
    assert_all_readable(http, objects)
    wait_live_nodes(http, cluster.nodes - 2, timeout_s=15)
    # The default is fitted to the five (ec:3+2); an explicit ec:4+2 would need six.
    response = http.put("heal/five-left", random_bytes(MIB))
    assert response.status == 201, response.body
    assert response.json()["redundancy"] == "ec:3+2"
    assert http.delete("heal/five-left").status == 204

    Faults(cluster).pause_node(4)
    wait_live_nodes(http, cluster.nodes - 3, timeout_s=15)
    before = http.list_keys()
    response = http.put("heal/too-few", random_bytes(MIB), {"X-Redundancy": "ec:4+2"})
    assert response.status == 503, response.body
    assert error_code(response) == "not_enough_nodes"
    assert http.list_keys() == before


# -- damaged chunks ----------------------------------------------------------------------------


def test_scrubber_finds_corruption_nobody_read(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    key = "heal/replicas"
    victim = object_chunks(cluster, key)[1]
    Faults.flip_byte(victim.path)

    def replaced() -> bool:
        return victim.path not in {c.path for c in object_chunks(cluster, key)}

    assert wait_until(replaced, HEAL_TIMEOUT_S, 0.5), repair_status(http)
    scrubbed = {n["id"]: n["scrub"] for n in http.nodes()}
    assert scrubbed[id_of(cluster, victim.node)]["corrupt_found"] >= 1
    assert_fully_placed(cluster, key, 3)
    assert_all_readable(http, objects)


def test_audit_finds_a_chunk_file_lost_from_a_disk_that_nobody_read(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    key = "heal/ec-small"
    victim = object_chunks(cluster, key)[2]
    found_before = repair_status(http)["chunks_found_missing"]
    victim.path.unlink()

    def replaced() -> bool:
        return victim.path not in {c.path for c in object_chunks(cluster, key)}

    assert wait_until(replaced, HEAL_TIMEOUT_S, 0.5), repair_status(http)
    found = repair_status(http)["chunks_found_missing"]
    assert isinstance(found, int) and isinstance(found_before, int)
    assert found == found_before + 1
    assert_fully_placed(cluster, key, 6)
    assert_all_readable(http, objects)


# -- garbage -----------------------------------------------------------------------------------


def test_gateway_killed_mid_upload_leaves_nothing(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    before = chunk_files(cluster)
    keys_before = http.list_keys()
    # Two whole segments (stored and renamed on the nodes), then silence.
    sent = start_stalled_upload(
        http,
        "heal/cut-off",
        2 * DEFAULT_SEGMENT_STRIPES * STRIPE // MIB + 1,
        {"X-Redundancy": "ec:4+2"},
    )
    assert sent.wait(20)
    assert wait_until(lambda: bool(chunk_files(cluster) - before), 10.0)
    Faults(cluster).kill_gateway()
    Faults(cluster).restart_gateway()
    wait_live_nodes(http, cluster.nodes, timeout_s=30)
    assert http.get("heal/cut-off").status == 404
    assert http.list_keys() == keys_before
    # After the grace period the abandoned upload's rows and chunks are gone.
    assert wait_until(lambda: not (chunk_files(cluster) - before), 60.0, 0.5), sorted(
        map(str, chunk_files(cluster) - before)
    )
    assert pending_uploads(cluster) == 0
    garbage = repair_status(http)["garbage"]
    assert isinstance(garbage, dict) and garbage["uploads_collected"] >= 1, garbage
    assert not temp_files(cluster)
    assert_all_readable(http, objects)


def pending_uploads(cluster: LocalCluster) -> int:
    database = cluster.data_dir / "gateway" / "metadata.db"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        (count,) = connection.execute(
            "SELECT count(*) FROM objects WHERE state = 'pending'"
        ).fetchone()
    finally:
        connection.close()
    return int(count)


def test_unreferenced_chunk_is_collected_but_referenced_ones_stay(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    stray_id = "f" * 32
    stray = cluster.node_data_dir(4) / "chunks" / stray_id[:2] / stray_id
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"left behind by something that crashed")
    old = time.time() - 10 * GC_GRACE_S
    os.utime(stray, (old, old))
    in_use = {c.path for key in objects for c in object_chunks(cluster, key)}
    for path in in_use:
        os.utime(path, (old, old))

    assert wait_until(lambda: not stray.exists(), 60.0, 0.5)
    assert all(path.exists() for path in in_use)
    assert_all_readable(http, objects)


# -- node lifecycle ----------------------------------------------------------------------------


def test_drain_then_remove_a_node(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    victim = 5
    victim_id = id_of(cluster, victim)
    # Not drained yet, so removing it must be refused.
    refused = http.request("DELETE", f"/_/nodes/{victim_id}")
    assert refused.status == 409, refused.body
    assert error_code(refused) == "node_in_use"

    drained = http.request("POST", f"/_/nodes/{victim_id}/drain")
    assert drained.status == 202, drained.body
    assert drained.json()["lifecycle"] == "draining"

    def node() -> dict[str, object]:
        entry: dict[str, object] = next(n for n in http.nodes() if n["id"] == victim_id)
        return entry

    assert wait_until(lambda: node()["drained"] is True, HEAL_TIMEOUT_S, 0.5), node()
    for key in objects:
        assert victim not in {c.node for c in object_chunks(cluster, key)}, key
    assert_all_readable(http, objects)
    # A drained node takes no new writes.
    response = http.put("heal/after-drain", random_bytes(MIB), {"X-Redundancy": "replicate:3"})
    assert response.status == 201
    assert victim not in {c.node for c in object_chunks(cluster, "heal/after-drain")}
    assert http.delete("heal/after-drain").status == 204

    # Bring it back into service for the other tests (remove is checked on a new node).
    back = http.request("POST", f"/_/nodes/{victim_id}/activate")
    assert back.status == 202 and back.json()["lifecycle"] == "active"


def test_new_node_takes_writes_rebalance_fills_it_and_it_can_be_removed(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    index = cluster.add_node(free_port())
    try:
        wait_live_nodes(http, cluster.nodes, timeout_s=20)
        new_id = id_of(cluster, index)
        # Writes reach it at once: over a few objects, some shard lands there.
        keys = [f"heal/spread-{i}" for i in range(12)]
        for key in keys:
            response = http.put(key, random_bytes(64 * 1024 + 1), {"X-Redundancy": "ec:4+2"})
            assert response.status == 201, response.body
        assert any(index in {c.node for c in object_chunks(cluster, k)} for k in keys)

        def in_use_on_new_node() -> int:
            entry = next(n for n in http.nodes() if n["id"] == new_id)
            count: int = entry["chunks_in_use"]
            return count

        before_rebalance = in_use_on_new_node()
        plan = http.request("POST", "/_/rebalance")
        assert plan.status == 202, plan.body
        assert plan.json()["chunks_to_move"] > 0, plan.json()
        wait_fully_redundant(http)
        assert in_use_on_new_node() > before_rebalance
        assert_all_readable(http, objects)

        # Drain it, stop it, remove it: nothing it held is lost.
        assert http.request("POST", f"/_/nodes/{new_id}/drain").status == 202

        def drained() -> bool:
            return any(n["id"] == new_id and n["drained"] for n in http.nodes())

        assert wait_until(drained, HEAL_TIMEOUT_S, 0.5)
        cluster.drop_last_node()
        assert http.request("DELETE", f"/_/nodes/{new_id}").status == 204
        assert new_id not in node_states(http)
        for key in keys:
            got = http.get(key)
            assert got.status == 200
            assert http.delete(key).status == 204
    finally:
        if cluster.nodes > index:
            cluster.drop_last_node()
    assert_all_readable(http, objects)


class Traffic:
    """Two writers and a reader in threads, recording every failure a client would see."""

    def __init__(self, http: Client, objects: dict[str, Stored]) -> None:
        self.http = http
        self.objects = objects
        self.committed: dict[str, str] = {}
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._write, args=(i,)) for i in range(2)] + [
            threading.Thread(target=self._read)
        ]

    def __enter__(self) -> Traffic:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)

    def _write(self, worker: int) -> None:
        number = 0
        while not self._stop.is_set():
            key = f"heal/stream-{worker}-{number}"
            data = random_bytes(256 * 1024 + number * 4099)
            number += 1
            try:
                response = self.http.put(key, data)
            except TransportError as error:
                self.failures.append(f"PUT {key}: {error!r}")
                continue
            if response.status == 201:
                with self._lock:
                    self.committed[key] = md5_hex(data)
            elif response.status != 503:  # too few nodes for a write is an answer, not a loss
                self.failures.append(f"PUT {key}: {response.status} {response.body[:200]!r}")

    def _read(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                recent = list(self.committed.items())[-8:]
            older = [(s.key, s.data_md5) for s in self.objects.values()]
            for key, md5 in [*recent, *older]:
                got = self.http.get(key)
                if got.status != 200 or md5_hex(got.body) != md5:
                    self.failures.append(f"GET {key}: {got.status} {got.body[:200]!r}")


def test_two_nodes_killed_during_a_stream_of_uploads_and_downloads(
    cluster: LocalCluster, http: Client, objects: dict[str, Stored]
) -> None:
    """Clients keep writing and reading while two nodes die and come back: every write that
    was answered 201 reads back md5-correct, every read of a committed object succeeds, and
    the cluster ends at full redundancy."""
    with Traffic(http, objects) as traffic:
        time.sleep(2)
        Faults(cluster).kill_node(5)
        time.sleep(2)
        Faults(cluster).kill_node(6)
        time.sleep(REPAIR_GRACE_S + NODE_TIMEOUT_S + 2)
        Faults(cluster).restart_node(5)
        Faults(cluster).restart_node(6)
        time.sleep(3)
    assert not traffic.failures, traffic.failures[:5]
    assert len(traffic.committed) >= 5, len(traffic.committed)
    wait_live_nodes(http, cluster.nodes, timeout_s=20)
    wait_fully_redundant(http)
    for key, md5 in traffic.committed.items():
        got = http.get(key)
        assert got.status == 200 and md5_hex(got.body) == md5, key
        assert http.delete(key).status == 204
