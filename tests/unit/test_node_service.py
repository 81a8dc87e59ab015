"""The node's gRPC surface, served in-process on loopback and called through the generated stub."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import crc32c
import grpc
import pytest

import diststorage.node
from diststorage.core.daemon import event_loop_factory
from diststorage.core.ids import new_id
from diststorage.core.settings import NodeSettings
from diststorage.node import ChunkStore, serve_node
from diststorage.node.app import Node, grpc_options, start_node
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    # Exists only in the generated stubs: the aio flavour of ChunkServiceStub.
    from diststorage.proto.storage_pb2_grpc import ChunkServiceAsyncStub as Stub


def make_settings(data_dir: Path, **overrides: Any) -> NodeSettings:
    # In process, over plaintext: tests/security covers the cluster's mutual TLS.
    values: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "data_dir": data_dir,
        "gateways": (),
        "insecure_cluster": True,
    }
    return NodeSettings(**(values | overrides))


@contextlib.asynccontextmanager
async def running_node(data_dir: Path, **overrides: Any) -> AsyncIterator[tuple[Node, Stub]]:
    node = await start_node(make_settings(data_dir, **overrides))
    try:
        options = grpc_options(node.settings)
        async with grpc.aio.insecure_channel(node.address, options=options) as channel:
            yield node, pb_grpc.ChunkServiceStub(channel)
    finally:
        await node.stop(0)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[Node, Stub]]:
    async with running_node(tmp_path / "node") as started:
        yield started


def make_blocks(*sizes: int) -> list[bytes]:
    rng = random.Random(7)
    return [rng.randbytes(size) for size in sizes]


def put_requests(
    chunk_id: str, blocks: list[bytes], expected_bytes: int | None = None
) -> Iterator[pb.PutChunkRequest]:
    expected = sum(map(len, blocks)) if expected_bytes is None else expected_bytes
    yield pb.PutChunkRequest(header=pb.ChunkHeader(chunk_id=chunk_id, expected_bytes=expected))
    for block in blocks:
        yield pb.PutChunkRequest(block=pb.Block(data=block, crc32c=crc32c.crc32c(block)))


async def get(
    stub: Stub, chunk_id: str, offset: int = 0, length: int = 0
) -> list[pb.GetChunkResponse]:
    request = pb.GetChunkRequest(chunk_id=chunk_id, offset=offset, length=length)
    return [message async for message in stub.GetChunk(request)]


def temp_files(node: Node) -> list[str]:
    return os.listdir(node.store.layout.tmp_dir)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        # Polls state the code under test owns and signals nowhere; the deadline bounds it.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@contextlib.contextmanager
def rpc_error(code: grpc.StatusCode) -> Iterator[None]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        yield
    assert info.value.code() == code, info.value.details()


def test_public_api() -> None:
    assert sorted(diststorage.node.__all__) == ["ChunkStore", "run_node", "serve_node"]


async def test_put_get_list_stat_delete_round_trip(node: tuple[Node, Stub]) -> None:
    running, stub = node
    chunk_id = new_id()
    blocks = make_blocks(1 << 20, 5 << 20, 3)  # 5 MiB: above grpc's default message limit

    response = await stub.PutChunk(put_requests(chunk_id, blocks))
    assert (response.chunk_id, response.size_bytes, response.block_count) == (
        chunk_id,
        sum(map(len, blocks)),
        3,
    )

    messages = await get(stub, chunk_id)
    assert [m.data for m in messages] == blocks
    assert [m.offset for m in messages] == [0, 1 << 20, 6 << 20]
    assert [m.block_crc32c for m in messages] == [crc32c.crc32c(b) for b in blocks]
    assert all(m.whole_block for m in messages)

    partial = await get(stub, chunk_id, (1 << 20) - 1, 2)
    assert [(m.data, m.offset, m.whole_block) for m in partial] == [
        (blocks[0][-1:], (1 << 20) - 1, False),
        (blocks[1][:1], 1 << 20, False),
    ]

    listing = await stub.ListChunks(pb.ListChunksRequest())
    assert [(c.chunk_id, c.size_bytes) for c in listing.chunks] == [(chunk_id, response.size_bytes)]
    assert not listing.truncated

    status = await stub.Stat(pb.StatRequest())
    assert status.node_id == running.store.node_id
    assert status.address == running.address
    assert (status.used_bytes, status.chunk_count) == (running.store.used_bytes, 1)
    assert status.used_bytes > response.size_bytes and status.free_bytes > 0

    assert (await stub.DeleteChunk(pb.DeleteChunkRequest(chunk_id=chunk_id))).existed
    assert not (await stub.DeleteChunk(pb.DeleteChunkRequest(chunk_id=chunk_id))).existed
    with rpc_error(grpc.StatusCode.NOT_FOUND):
        await get(stub, chunk_id)
    assert (await stub.Stat(pb.StatRequest())).chunk_count == 0


async def test_corrupted_chunk_is_data_loss_not_bytes(node: tuple[Node, Stub]) -> None:
    running, stub = node
    chunk_id = new_id()
    blocks = make_blocks(1000, 1000)
    await stub.PutChunk(put_requests(chunk_id, blocks))
    path = running.store.layout.chunk_path(chunk_id)
    raw = bytearray(path.read_bytes())
    raw[1500] ^= 0xFF
    path.write_bytes(bytes(raw))

    received: list[bytes] = []
    with rpc_error(grpc.StatusCode.DATA_LOSS):
        async for message in stub.GetChunk(pb.GetChunkRequest(chunk_id=chunk_id)):
            received.append(message.data)
    assert received == [blocks[0]]
    assert [m.data for m in await get(stub, chunk_id, 0, 1000)] == [blocks[0]]


async def test_put_beyond_capacity_is_resource_exhausted(tmp_path: Path) -> None:
    async with running_node(tmp_path, capacity_bytes=10_000) as (running, stub):
        with rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED):
            await stub.PutChunk(put_requests(new_id(), make_blocks(100), expected_bytes=20_000))
        with rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED):
            await stub.PutChunk(put_requests(new_id(), make_blocks(6000, 6000), expected_bytes=1))
        assert temp_files(running) == []
        status = await stub.Stat(pb.StatRequest())
        assert (status.used_bytes, status.free_bytes, status.capacity_bytes) == (0, 10_000, 10_000)


async def test_request_errors_map_to_status_codes(node: tuple[Node, Stub]) -> None:
    _, stub = node
    with rpc_error(grpc.StatusCode.NOT_FOUND):
        await get(stub, new_id())
    with rpc_error(grpc.StatusCode.INVALID_ARGUMENT):
        await get(stub, "../../etc/passwd")
    chunk_id = new_id()
    await stub.PutChunk(put_requests(chunk_id, make_blocks(10)))
    with rpc_error(grpc.StatusCode.ALREADY_EXISTS):
        await stub.PutChunk(put_requests(chunk_id, make_blocks(10)))
    with rpc_error(grpc.StatusCode.INVALID_ARGUMENT):
        await get(stub, chunk_id, 5, 6)  # past the end
    with rpc_error(grpc.StatusCode.INVALID_ARGUMENT):
        await stub.ListChunks(pb.ListChunksRequest(after="nope"))


async def test_put_must_start_with_a_header(node: tuple[Node, Stub]) -> None:
    running, stub = node
    block_first = list(put_requests(new_id(), make_blocks(10, 10)))[1:]
    with rpc_error(grpc.StatusCode.INVALID_ARGUMENT):
        await stub.PutChunk(iter(block_first))
    with rpc_error(grpc.StatusCode.INVALID_ARGUMENT):
        await stub.PutChunk(iter([]))
    two_headers = list(put_requests(new_id(), [])) * 2
    with rpc_error(grpc.StatusCode.INVALID_ARGUMENT):
        await stub.PutChunk(iter(two_headers))
    assert temp_files(running) == [] and running.store.chunk_count == 0


async def test_block_with_bad_crc_is_data_loss_and_leaves_nothing(
    node: tuple[Node, Stub],
) -> None:
    running, stub = node
    chunk_id = new_id()
    requests = list(put_requests(chunk_id, make_blocks(100, 100)))
    requests[2].block.crc32c ^= 1
    with rpc_error(grpc.StatusCode.DATA_LOSS):
        await stub.PutChunk(iter(requests))
    assert temp_files(running) == []
    with rpc_error(grpc.StatusCode.NOT_FOUND):
        await get(stub, chunk_id)


@pytest.mark.parametrize("blocks_before_cancel", [0, 1, 3])
async def test_put_cancelled_mid_stream_leaves_nothing(
    node: tuple[Node, Stub], blocks_before_cancel: int
) -> None:
    running, stub = node
    requests = list(put_requests(new_id(), make_blocks(*[100_000] * 4)))
    call = stub.PutChunk(None)  # None: requests are sent with call.write()
    for request in requests[: 1 + blocks_before_cancel]:
        await call.write(request)
    await wait_until(lambda: running.store.ledger.reserved_bytes > 0)
    await wait_until(
        lambda: running.store.ledger.pending_written_bytes == 100_000 * blocks_before_cancel
    )

    call.cancel()

    await wait_until(lambda: running.store.ledger.reserved_bytes == 0)
    assert temp_files(running) == []
    assert (await stub.ListChunks(pb.ListChunksRequest())).chunks == []
    assert running.store.chunk_count == 0


def test_node_serves_on_the_event_loop_run_node_uses(tmp_path: Path) -> None:
    async def round_trip() -> str:
        async with running_node(tmp_path) as (_, stub):
            chunk_id = new_id()
            blocks = make_blocks(1 << 20, 10)
            await stub.PutChunk(put_requests(chunk_id, blocks))
            assert [m.data for m in await get(stub, chunk_id)] == blocks
        return type(asyncio.get_running_loop()).__module__

    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        assert runner.run(round_trip()).startswith("uvloop")


async def test_serve_node_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    task = asyncio.create_task(serve_node(make_settings(tmp_path)))
    # Until serve_node installed its handler, SIGTERM would kill the test run itself.
    await wait_until(lambda: signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL or task.done())
    assert not task.done()

    os.kill(os.getpid(), signal.SIGTERM)

    async with asyncio.timeout(10):
        await task
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    async with await ChunkStore.open(tmp_path):  # the data directory was released
        pass


class FakeInventory(pb_grpc.InventoryServicer):
    """A gateway's Inventory service that answers, fails, or never answers."""

    def __init__(self, behaviour: Literal["answer", "fail", "hang"]) -> None:
        self.behaviour = behaviour
        self.beats: list[pb.HeartbeatRequest] = []

    async def Heartbeat(  # noqa: N802 - name fixed by the .proto
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HeartbeatResponse:
        self.beats.append(request)
        if self.behaviour == "fail":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "gateway is down")
        if self.behaviour == "hang":
            await asyncio.sleep(3600)
        return pb.HeartbeatResponse(gateway_id="gateway-under-test")


@contextlib.asynccontextmanager
async def fake_gateway(inventory: FakeInventory, port: int = 0) -> AsyncIterator[str]:
    server = grpc.aio.server()
    pb_grpc.add_InventoryServicer_to_server(inventory, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


async def test_heartbeats_reach_every_gateway_despite_failing_ones(tmp_path: Path) -> None:
    good, failing, hung = FakeInventory("answer"), FakeInventory("fail"), FakeInventory("hang")
    async with (
        fake_gateway(good) as good_address,
        fake_gateway(failing) as failing_address,
        fake_gateway(hung) as hung_address,
        running_node(
            tmp_path,
            gateways=(hung_address, failing_address, good_address),
            heartbeat_interval_s=0.05,
            heartbeat_timeout_s=1.0,
        ) as (running, stub),
    ):
        await stub.PutChunk(put_requests(new_id(), make_blocks(1234)))
        used = running.store.used_bytes

        def beats_with_chunk() -> list[pb.HeartbeatRequest]:
            return [b for b in good.beats if b.status.used_bytes == used]

        await wait_until(lambda: len(beats_with_chunk()) >= 2)
        for beat in beats_with_chunk():
            assert beat.status.node_id == running.store.node_id
            assert beat.status.address == running.address
            assert (beat.status.chunk_count, beat.status.free_bytes > 0) == (1, True)

        # Beats to the good gateway keep their pace although another one takes 1 s to time out.
        loop = asyncio.get_running_loop()
        started, count = loop.time(), len(good.beats)
        await wait_until(lambda: len(good.beats) >= count + 5)
        assert loop.time() - started < 1.0
        await wait_until(lambda: len(failing.beats) >= 2 and len(hung.beats) >= 2)


async def test_heartbeats_resume_soon_after_a_late_gateway_comes_up(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    gateway = FakeInventory("answer")
    async with running_node(
        tmp_path, gateways=(f"127.0.0.1:{port}",), heartbeat_interval_s=0.05
    ) as _:
        # Long enough for grpc's default reconnect backoff (1 s, x1.6 per failure) to put the
        # next attempt more than a second after the gateway appears.
        await asyncio.sleep(3.0)
        async with fake_gateway(gateway, port):
            loop = asyncio.get_running_loop()
            started = loop.time()
            await wait_until(lambda: len(gateway.beats) >= 1)
            assert loop.time() - started < 0.8


def _once(chunk_id: str, block: bytes, crc: int | None = None) -> pb.PutChunkOnceRequest:
    return pb.PutChunkOnceRequest(
        header=pb.ChunkHeader(chunk_id=chunk_id, expected_bytes=len(block)),
        block=pb.Block(data=block, crc32c=crc32c.crc32c(block) if crc is None else crc),
    )


async def test_put_chunk_once_round_trip(node: tuple[Node, Stub]) -> None:
    running, stub = node
    chunk_id = new_id()
    (block,) = make_blocks(3000)
    response = await stub.PutChunkOnce(_once(chunk_id, block))
    assert (response.chunk_id, response.size_bytes, response.block_count) == (chunk_id, 3000, 1)
    assert [m.data for m in await get(stub, chunk_id)] == [block]
    with rpc_error(grpc.StatusCode.ALREADY_EXISTS):
        await stub.PutChunkOnce(_once(chunk_id, block))
    assert running.store.chunk_count == 1


async def test_put_chunk_once_refuses_bad_crc_and_lack_of_room(tmp_path: Path) -> None:
    async with running_node(tmp_path, capacity_bytes=10_000) as (running, stub):
        (block,) = make_blocks(100)
        with rpc_error(grpc.StatusCode.DATA_LOSS):
            await stub.PutChunkOnce(_once(new_id(), block, crc32c.crc32c(block) ^ 1))
        (big,) = make_blocks(20_000)
        with rpc_error(grpc.StatusCode.RESOURCE_EXHAUSTED):
            await stub.PutChunkOnce(_once(new_id(), big))
        assert temp_files(running) == [] and running.store.chunk_count == 0


async def test_get_chunk_once_serves_the_first_block_of_the_range(
    node: tuple[Node, Stub],
) -> None:
    running, stub = node
    chunk_id = new_id()
    blocks = make_blocks(1000, 700, 300)
    await stub.PutChunk(put_requests(chunk_id, blocks))

    async def once(offset: int, length: int) -> pb.GetChunkResponse:
        return await stub.GetChunkOnce(
            pb.GetChunkRequest(chunk_id=chunk_id, offset=offset, length=length)
        )

    second = await once(1000, 700)
    assert (second.data, second.offset, second.whole_block) == (blocks[1], 1000, True)
    assert second.block_crc32c == crc32c.crc32c(blocks[1])
    # A range of several blocks still gets one: the first it touches.
    assert (await once(0, 0)).data == blocks[0]
    assert (await once(1700, 300)).data == blocks[2]
    assert (await once(2000, 0)).data == b"", "past the end: no block"

    with rpc_error(grpc.StatusCode.NOT_FOUND):
        await stub.GetChunkOnce(pb.GetChunkRequest(chunk_id=new_id()))
    path = running.store.layout.chunk_path(chunk_id)
    raw = bytearray(path.read_bytes())
    raw[1500] ^= 0xFF
    path.write_bytes(bytes(raw))
    with rpc_error(grpc.StatusCode.DATA_LOSS):
        await once(1000, 700)
    assert (await once(0, 1000)).data == blocks[0], "the sound block is still served"
