"""Hypothesis against a node's gRPC servicer over a real loopback channel: random and
malformed PutChunk, PutChunkOnce, GetChunk, GetChunkOnce, DeleteChunk, ListChunks and Stat
calls. Every call ends within its deadline with OK or a status that names the client's
mistake, never INTERNAL or UNKNOWN (an exception the servicer did not translate); the node
still stores and serves a chunk afterwards.

The node runs in its own thread and event loop, the way a node process serves; the fuzz calls
it through the synchronous generated stub, one channel for the whole run.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import crc32c
import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diststorage.core.ids import new_id
from diststorage.core.settings import NodeSettings
from diststorage.node.app import Node, grpc_options, start_node
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc

CALL_DEADLINE_S = 5.0
EXAMPLES = 60
UINT64 = st.integers(min_value=0, max_value=(1 << 64) - 1)
UINT32 = st.integers(min_value=0, max_value=(1 << 32) - 1)
BAD_STATUSES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

# Chunk ids: well-formed ones (some stored by earlier examples), near misses and any text.
chunk_ids = st.one_of(
    st.sampled_from([new_id() for _ in range(3)]),
    st.text(alphabet="0123456789abcdef", max_size=40),
    st.text(alphabet="0123456789ABCDEFabcdef./\\\0 ", max_size=40),
    st.text(max_size=40),
)
small_data = st.binary(max_size=4096)


@st.composite
def blocks(draw: st.DrawFn) -> pb.Block:
    data = draw(small_data)
    crc = draw(st.one_of(st.just(crc32c.crc32c(data)), UINT32))
    return pb.Block(data=data, crc32c=crc)


headers = st.builds(pb.ChunkHeader, chunk_id=chunk_ids, expected_bytes=UINT64)
put_messages = st.one_of(
    st.builds(pb.PutChunkRequest, header=headers),
    st.builds(pb.PutChunkRequest, block=blocks()),
    st.just(pb.PutChunkRequest()),
)


@st.composite
def put_streams(draw: st.DrawFn) -> list[pb.PutChunkRequest]:
    """Mostly a header then blocks, as a gateway sends; otherwise anything in any order."""
    if draw(st.booleans()):
        chunk_data = draw(st.lists(blocks(), max_size=4))
        size = sum(len(b.data) for b in chunk_data)
        expected = draw(st.one_of(st.just(size), UINT64))
        header = pb.ChunkHeader(chunk_id=draw(chunk_ids), expected_bytes=expected)
        return [pb.PutChunkRequest(header=header)] + [
            pb.PutChunkRequest(block=b) for b in chunk_data
        ]
    return draw(st.lists(put_messages, max_size=6))


class _NodeThread:
    """A node serving from its own event loop in a thread, stopped on ``close``."""

    def __init__(self, data_dir: Path) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        # Plain links: what is fuzzed is the servicer's decoding of what a member could send;
        # who may call at all is tests/security/test_cluster_links.py's.
        settings = NodeSettings(
            listen="127.0.0.1:0", data_dir=data_dir, gateways=(), insecure_cluster=True
        )
        self.node: Node = self._run(start_node(settings))

    def _run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=30)

    def close(self) -> None:
        self._run(self.node.stop(0))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture(scope="module")
def channel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[grpc.Channel]:
    served = _NodeThread(tmp_path_factory.mktemp("fuzz-node"))
    try:
        options = grpc_options(served.node.settings)
        with grpc.insecure_channel(served.node.address, options=options) as opened:
            yield opened
    finally:
        served.close()


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.ChunkServiceStub:
    return pb_grpc.ChunkServiceStub(channel)


def answered(call: Callable[[], Any]) -> None:
    """Makes the call; OK or a status other than INTERNAL / UNKNOWN, within the deadline."""
    try:
        result = call()
        if isinstance(result, Iterator):
            for _ in result:
                pass
    except grpc.RpcError as error:
        code = error.code()
        assert code not in BAD_STATUSES, (code, error.details())
        assert code != grpc.StatusCode.DEADLINE_EXCEEDED, error.details()


@given(stream=put_streams())
@settings(max_examples=EXAMPLES, deadline=None)
def test_put_chunk_streams(
    stub: pb_grpc.ChunkServiceStub, stream: list[pb.PutChunkRequest]
) -> None:
    answered(lambda: stub.PutChunk(iter(stream), timeout=CALL_DEADLINE_S))


@given(
    header=st.one_of(st.none(), headers),
    block=st.one_of(st.none(), blocks()),
)
@settings(max_examples=EXAMPLES, deadline=None)
def test_put_chunk_once(
    stub: pb_grpc.ChunkServiceStub, header: pb.ChunkHeader | None, block: pb.Block | None
) -> None:
    request = pb.PutChunkOnceRequest(header=header, block=block)
    answered(lambda: stub.PutChunkOnce(request, timeout=CALL_DEADLINE_S))


@given(chunk_id=chunk_ids, offset=UINT64, length=UINT64, once=st.booleans())
@settings(max_examples=EXAMPLES, deadline=None)
def test_get_chunk(
    stub: pb_grpc.ChunkServiceStub, chunk_id: str, offset: int, length: int, once: bool
) -> None:
    request = pb.GetChunkRequest(chunk_id=chunk_id, offset=offset, length=length)
    method = stub.GetChunkOnce if once else stub.GetChunk
    answered(lambda: method(request, timeout=CALL_DEADLINE_S))


@given(chunk_id=chunk_ids, after=chunk_ids, limit=UINT32)
@settings(max_examples=EXAMPLES, deadline=None)
def test_delete_list_and_stat(
    stub: pb_grpc.ChunkServiceStub, chunk_id: str, after: str, limit: int
) -> None:
    answered(lambda: stub.DeleteChunk(pb.DeleteChunkRequest(chunk_id=chunk_id), timeout=5))
    answered(lambda: stub.ListChunks(pb.ListChunksRequest(after=after, limit=limit), timeout=5))
    answered(lambda: stub.Stat(pb.StatRequest(), timeout=CALL_DEADLINE_S))


def _raw(data: bytes) -> bytes:
    return data


UNARY_METHODS = ["PutChunkOnce", "GetChunkOnce", "DeleteChunk", "ListChunks", "Stat"]
SERVICE = "/diststorage.v1.ChunkService/"


@given(method=st.sampled_from([*UNARY_METHODS, "GetChunk"]), raw=st.binary(max_size=64))
@settings(max_examples=EXAMPLES, deadline=None)
def test_bytes_that_are_no_message(channel: grpc.Channel, method: str, raw: bytes) -> None:
    # Found by this fuzz: undecodable bytes ended the call with UNKNOWN ("Unexpected
    # DecodeError"), raised by grpc before the servicer ran (node/undecodable.py).
    if method == "GetChunk":
        call: Any = channel.unary_stream(SERVICE + method, _raw, _raw)
    else:
        call = channel.unary_unary(SERVICE + method, _raw, _raw)
    answered(lambda: call(raw, timeout=CALL_DEADLINE_S))


@given(raws=st.lists(st.binary(max_size=64), max_size=4))
@settings(max_examples=EXAMPLES, deadline=None)
def test_streamed_bytes_that_are_no_message(channel: grpc.Channel, raws: list[bytes]) -> None:
    call = channel.stream_unary(SERVICE + "PutChunk", _raw, _raw)
    answered(lambda: call(iter(raws), timeout=CALL_DEADLINE_S))


def test_undecodable_requests_are_the_clients_mistake(channel: grpc.Channel) -> None:
    for method in UNARY_METHODS:
        with pytest.raises(grpc.RpcError) as raised:
            call = channel.unary_unary(SERVICE + method, _raw, _raw)
            call(b"\xff\xff\xff", timeout=CALL_DEADLINE_S)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method
    put = channel.stream_unary(SERVICE + "PutChunk", _raw, _raw)
    with pytest.raises(grpc.RpcError) as raised:
        put(iter([b"\x0a\x05ab"]), timeout=CALL_DEADLINE_S)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_the_node_still_stores_and_serves_after_the_fuzz(stub: pb_grpc.ChunkServiceStub) -> None:
    chunk_id = new_id()
    data = b"still serving"
    header = pb.ChunkHeader(chunk_id=chunk_id, expected_bytes=len(data))
    block = pb.Block(data=data, crc32c=crc32c.crc32c(data))
    stored = stub.PutChunkOnce(
        pb.PutChunkOnceRequest(header=header, block=block), timeout=CALL_DEADLINE_S
    )
    assert stored.size_bytes == len(data)
    got = stub.GetChunkOnce(pb.GetChunkRequest(chunk_id=chunk_id), timeout=CALL_DEADLINE_S)
    assert got.data == data
    assert stub.Stat(pb.StatRequest(), timeout=CALL_DEADLINE_S).chunk_count >= 1
