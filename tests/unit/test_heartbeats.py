"""The gateway's Inventory service over real gRPC in-process: a beat's wire message becomes
records in the node table and the scrub table, corrupt chunks no object places on the node
are acknowledged at once (confirmations.py reads back the others), and a database outage
reaches the node as UNAVAILABLE."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import grpc.aio
import pytest

from diststorage.gateway.confirmations import CorruptionConfirmations
from diststorage.gateway.heartbeats import HeartbeatServicer, ScrubStatus
from diststorage.gateway.inventory import Inventory
from diststorage.meta import MetadataStore, NodeLiveness
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc
from diststorage.testing import FakeClock, FakeNodes

GATEWAY_ID = "a" * 32
NODE_ID = "b" * 32


@dataclass
class Gateway:
    store: MetadataStore
    inventory: Inventory
    servicer: HeartbeatServicer
    stub: pb_grpc.InventoryAsyncStub


@contextlib.asynccontextmanager
async def serving(store: MetadataStore) -> AsyncIterator[Gateway]:
    inventory = Inventory(store, 10.0, clock=FakeClock())
    confirmations = CorruptionConfirmations(store.maintenance, FakeNodes(0))
    servicer = HeartbeatServicer(inventory, confirmations, GATEWAY_ID)
    server = grpc.aio.server()
    pb_grpc.add_InventoryServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub: pb_grpc.InventoryAsyncStub = pb_grpc.InventoryStub(channel)
            yield Gateway(store, inventory, servicer, stub)
    finally:
        await server.stop(0)


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    store = await MetadataStore.open(f"sqlite:///{tmp_path / 'm.db'}", 5.0)
    try:
        async with serving(store) as running:
            yield running
    finally:
        await store.close()


def beat(corrupt: list[str] | None = None) -> pb.HeartbeatRequest:
    status = pb.NodeStatus(
        node_id=NODE_ID,
        address="127.0.0.1:7001",
        capacity_bytes=1000,
        used_bytes=300,
        chunk_count=3,
        free_bytes=700,
        scrub=pb.ScrubStatus(
            verified_bytes=4096, corrupt_found=1, passes_completed=2, last_pass_finished=1.5e9
        ),
    )
    return pb.HeartbeatRequest(status=status, corrupt_chunk_ids=corrupt or [])


async def test_a_beat_becomes_records(gateway: Gateway) -> None:
    response = await gateway.stub.Heartbeat(beat())
    assert response.gateway_id == GATEWAY_ID
    assert list(response.acknowledged_corrupt_chunk_ids) == []
    [view] = gateway.inventory.views()
    assert view.state == NodeLiveness.UP
    info = view.info
    assert (info.node_id, info.address) == (NODE_ID, "127.0.0.1:7001")
    assert (info.capacity_bytes, info.used_bytes, info.free_bytes, info.chunk_count) == (
        1000,
        300,
        700,
        3,
    )
    assert gateway.servicer.scrub == {NODE_ID: ScrubStatus(4096, 1, 2, 1.5e9)}
    assert [n.address for n in await gateway.store.list_nodes()] == ["127.0.0.1:7001"]


async def test_corrupt_chunks_no_object_holds_are_acknowledged(gateway: Gateway) -> None:
    corrupt = ["c" * 32, "d" * 32]
    response = await gateway.stub.Heartbeat(beat(corrupt))
    assert list(response.acknowledged_corrupt_chunk_ids) == corrupt


async def test_a_database_outage_is_unavailable_to_the_node() -> None:
    # Nothing listens on port 1: every write fails to connect.
    store = await MetadataStore.open("postgresql://postgres@127.0.0.1:1/none", 2.0, migrate=False)
    try:
        async with serving(store) as gateway:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await gateway.stub.Heartbeat(beat())
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert gateway.servicer.scrub == {}
    finally:
        await store.close()
