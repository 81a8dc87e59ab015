"""The parts of a gateway of several worker processes that need no process: a beat relayed
between two workers over their private unix socket (real gRPC, in process), the merge of
the workers' metrics, each worker's role and handoff, and the default worker count."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc.aio
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_heartbeats import GATEWAY_ID, NODE_ID, beat

from diststorage.core.settings import MAX_DEFAULT_GATEWAY_WORKERS, GatewaySettings, usable_cpus
from diststorage.gateway.confirmations import CorruptionConfirmations
from diststorage.gateway.dashboard.throughput import read_counters
from diststorage.gateway.heartbeats import HeartbeatServicer, ScrubStatus
from diststorage.gateway.inventory import Inventory
from diststorage.gateway.pool import (
    SiblingCounters,
    Siblings,
    SiblingServer,
    WorkerHandoff,
    WorkerRole,
    merge_expositions,
)
from diststorage.meta import MetadataStore, NodeLiveness
from diststorage.proto import storage_pb2_grpc as pb_grpc
from diststorage.testing import FakeClock, FakeNodes


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # A short path: a unix socket's must fit in 108 bytes.
    with tempfile.TemporaryDirectory(prefix="pool-") as folder:
        yield Path(folder)


async def _worker(
    tmp_path: Path, name: str, relay: Siblings | None
) -> tuple[MetadataStore, Inventory, HeartbeatServicer]:
    store = await MetadataStore.open(f"sqlite:///{tmp_path / name}.db", 5.0)
    inventory = Inventory(store, 10.0, clock=FakeClock())
    confirmations = CorruptionConfirmations(store.maintenance, FakeNodes(0))
    servicer = HeartbeatServicer(
        inventory,
        confirmations,
        GATEWAY_ID,
        relay=None if relay is None else relay.relay_heartbeat,
    )
    return store, inventory, servicer


async def test_a_beat_one_worker_receives_reaches_its_sibling(
    tmp_path: Path, run_dir: Path
) -> None:
    first, second = WorkerRole(0, 2, run_dir, os.getpid()), WorkerRole(1, 2, run_dir, os.getpid())
    siblings = Siblings(first)
    store_a, inventory_a, servicer_a = await _worker(tmp_path, "a", siblings)
    store_b, inventory_b, servicer_b = await _worker(tmp_path, "b", None)
    sibling_server = SiblingServer(second, servicer_b.take_relayed, lambda: b"")
    await sibling_server.start()
    server = grpc.aio.server()
    pb_grpc.add_InventoryServicer_to_server(servicer_a, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub: pb_grpc.InventoryAsyncStub = pb_grpc.InventoryStub(channel)
            corrupt = ["c" * 32]
            response = await stub.Heartbeat(beat(corrupt))
        # The node's answer is the receiving worker's: the gateway id and what it settled.
        assert response.gateway_id == GATEWAY_ID
        assert list(response.acknowledged_corrupt_chunk_ids) == corrupt
        for _ in range(100):
            if NODE_ID in servicer_b.scrub:
                break
            await asyncio.sleep(0.02)
        [view] = inventory_b.views()
        assert view.state == NodeLiveness.UP
        assert view.info.used_bytes == 300
        assert servicer_b.scrub == {NODE_ID: ScrubStatus(4096, 1, 2, 1.5e9)}
        assert inventory_a.is_up(NODE_ID)
    finally:
        await server.stop(0)
        await siblings.close()
        await sibling_server.stop()
        await store_a.close()
        await store_b.close()


async def test_a_relayed_beat_that_does_not_parse_is_refused(tmp_path: Path) -> None:
    store, inventory, servicer = await _worker(tmp_path, "a", None)
    try:
        with pytest.raises(Exception, match="does not parse"):
            await servicer.take_relayed(b"\xff\xff not a protobuf")
        assert inventory.node_ids() == []
    finally:
        await store.close()


async def test_the_dashboard_throughput_counts_the_siblings_requests(run_dir: Path) -> None:
    registry = CollectorRegistry()
    requests = Counter(
        "diststorage_http_requests", "r", ["api", "method", "route", "status"], registry=registry
    )
    requests.labels("native", "GET", "object", "200").inc(5)
    Gauge("diststorage_nodes", "n", registry=registry).set(3)
    sibling = SiblingServer(
        WorkerRole(1, 2, run_dir, os.getpid()), _no_beats, lambda: generate_latest(registry)
    )
    await sibling.start()
    siblings = Siblings(WorkerRole(0, 2, run_dir, os.getpid()))
    counters = SiblingCounters(siblings, 2.0)
    try:
        step = await counters.work()
        assert step.wait_s == 2.0
        assert counters.status() == {"siblings_answered": 1}
        assert {family.name for family in counters.collect()} == {"diststorage_http_requests"}
        assert read_counters([counters], 0.0).requests == {"GET": 5.0}
    finally:
        await siblings.close()
        await sibling.stop()


async def _no_beats(payload: bytes) -> None:
    raise AssertionError("no beat expected")


async def test_a_relay_to_a_sibling_that_is_down_is_dropped(run_dir: Path) -> None:
    siblings = Siblings(WorkerRole(0, 2, run_dir, os.getpid()))
    try:
        siblings.relay_heartbeat(beat().SerializeToString())
        assert await siblings.scrape_all() == []
    finally:
        await siblings.close()


def _exposition(requests: float, latency_s: float, node_up: float, eta_s: float) -> bytes:
    registry = CollectorRegistry()
    Counter("diststorage_http_requests", "r", ["route"], registry=registry).labels("object").inc(
        requests
    )
    Histogram("diststorage_meta_query_seconds", "q", registry=registry).observe(latency_s)
    Gauge("diststorage_node_up", "u", ["node"], registry=registry).labels("n1").set(node_up)
    Gauge("diststorage_worker_leader", "l", registry=registry).set(1 if eta_s < 10 else 0)
    Gauge("diststorage_repair_eta_seconds", "e", registry=registry).set(eta_s)
    Gauge("process_resident_memory_bytes", "m", registry=registry).set(100)
    return generate_latest(registry)


def _values(exposition: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(exposition.decode())
        for sample in family.samples
        if not sample.name.endswith("_created")
    }


def test_metrics_merge_sums_work_and_takes_the_shared_view_once() -> None:
    own = _exposition(3, 0.2, node_up=1, eta_s=float("inf"))
    sibling = _exposition(4, 0.004, node_up=0, eta_s=5)
    merged = _values(merge_expositions(own, [sibling]))
    assert merged[("diststorage_http_requests_total", (("route", "object"),))] == 7
    assert merged[("diststorage_meta_query_seconds_count", ())] == 2
    assert merged[("diststorage_meta_query_seconds_sum", ())] == pytest.approx(0.204)
    assert merged[("diststorage_meta_query_seconds_bucket", (("le", "0.005"),))] == 1
    assert merged[("diststorage_meta_query_seconds_bucket", (("le", "+Inf"),))] == 2
    # The node table: the answering worker's, never a sum over workers.
    assert merged[("diststorage_node_up", (("node", "n1"),))] == 1
    assert merged[("diststorage_worker_leader", ())] == 1
    assert merged[("diststorage_repair_eta_seconds", ())] == 5
    assert merged[("process_resident_memory_bytes", ())] == 200
    assert merged[("diststorage_gateway_workers", ())] == 2


def test_a_merge_without_siblings_keeps_every_figure() -> None:
    own = _exposition(3, 0.2, node_up=1, eta_s=1)
    merged = _values(merge_expositions(own, []))
    assert merged.pop(("diststorage_gateway_workers", ())) == 1
    assert merged == _values(own)


def test_a_worker_role_shares_the_limits_and_names_its_lease() -> None:
    role = WorkerRole(1, 3, Path("/run/x"), 1)
    assert [role.share(n) for n in (1, 3, 512, 4096)] == [1, 1, 171, 1366]
    assert role.lease_holder("a" * 32) == "a" * 32 + ".1"
    assert len(role.lease_holder("a" * 32)) <= 64  # the lease row's holder column
    assert role.siblings == [0, 2]
    assert role.socket_path(2) == Path("/run/x/w2.sock")


def test_a_handoff_carries_the_settings_and_the_secret(tmp_path: Path) -> None:
    from diststorage.gateway.processes import worker_settings

    settings = GatewaySettings(
        data_dir=tmp_path,
        root_access_key="AKID",
        root_secret_key="s3cr3t",
        allowed_policies=("ec:4+2",),
        workers=2,
    )
    role = WorkerRole(0, 2, tmp_path, 7)
    handoff = WorkerHandoff.decode(WorkerHandoff(role, worker_settings(settings)).encode())
    assert handoff.role == role
    rebuilt = GatewaySettings(**handoff.settings)
    assert rebuilt == settings
    assert rebuilt.root_secret_key is not None
    assert rebuilt.root_secret_key.get_secret_value() == "s3cr3t"


def test_the_default_worker_count() -> None:
    assert GatewaySettings().worker_count == 1  # SQLite
    postgres = GatewaySettings(metadata_url="postgresql://u@h/db")
    assert postgres.worker_count == max(1, min(usable_cpus(), MAX_DEFAULT_GATEWAY_WORKERS))
    assert GatewaySettings(workers=3).worker_count == 3
