"""The node's end of the data link (``core/datalink.py``): chunks read and written over
connections of their own, for gateways holding a link secret from ``OpenDataLink``.

Each connection serves one request at a time:

- a GET's blocks are read, checked against their CRCs (as the gRPC GetChunk does) and sent
  as they come, the next block read from disk while the last one is still going out;
- a PUT's blocks are written as they come, each checked against its CRC (as PutChunk does),
  the next one received while the last is written; the gateway's END commits the chunk and
  is answered STORED once it is durable. A write that fails (a CRC, the disk full, a chunk
  that exists) is answered ERROR at once, the chunk discarded, and the rest of the write read
  and dropped. A connection lost or idle mid-write discards the chunk too.

Limits: connections beyond ``max_connections`` are closed at once; a hello must come within
``HELLO_TIMEOUT_S``, each request within ``IDLE_TIMEOUT_S`` of the last and each frame of a
write within ``IDLE_TIMEOUT_S`` of the one before (a gateway may wait that long for its own
client's body); a gateway that stops taking a block for ``SEND_TIMEOUT_S`` loses the
connection. Frames before the hello are at most ``MAX_HELLO_BYTES``, after it at most a block
message (``max_frame_bytes``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import TypeVar

import grpc

from diststorage.core.datalink import (
    INSECURE_LINK,
    INSECURE_LINK_ID,
    MAX_HELLO_BYTES,
    BlockHead,
    Error,
    Failure,
    FrameConnection,
    Get,
    LinkError,
    LinkSecret,
    Message,
    Put,
    Seal,
    Stored,
    answer_hello,
    decode,
    encode_block_head,
    encode_end,
    encode_error,
    encode_stored,
    new_link_secret,
)
from diststorage.core.errors import DiststorageError
from diststorage.core.request_ids import current_request_id, is_acceptable
from diststorage.node.chunkstore import ChunkStore
from diststorage.node.rpcerrors import status_of
from diststorage.node.rpclog import CallRecord, log_call
from diststorage.node.writer import CommitResult

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 60.0
SEND_TIMEOUT_S = 60.0
# Link secrets kept: each gateway holds one per node, so this is gateways × restarts.
MAX_LINKS = 4096


class LinkTable:
    """Secrets handed out, newest last; the oldest goes when the table is full."""

    def __init__(self, capacity: int = MAX_LINKS) -> None:
        self._secrets: collections.OrderedDict[bytes, LinkSecret] = collections.OrderedDict()
        self._capacity = capacity

    def issue(self) -> LinkSecret:
        secret = new_link_secret()
        self._secrets[secret.link_id] = secret
        while len(self._secrets) > self._capacity:
            self._secrets.popitem(last=False)
        return secret

    def get(self, link_id: bytes) -> LinkSecret | None:
        return self._secrets.get(link_id)


# The kinds of error the gRPC calls answer with (node/rpcerrors.py), as the link says them.
_FAILURE_OF_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: Failure.INVALID,
    grpc.StatusCode.NOT_FOUND: Failure.NOT_FOUND,
    grpc.StatusCode.ALREADY_EXISTS: Failure.EXISTS,
    grpc.StatusCode.RESOURCE_EXHAUSTED: Failure.NO_SPACE,
    grpc.StatusCode.DATA_LOSS: Failure.DATA_LOSS,
}


def _failure_of(exc: DiststorageError) -> Failure:
    return _FAILURE_OF_STATUS.get(status_of(exc), Failure.UNAVAILABLE)


@dataclass
class _Call(CallRecord):
    """What a request's log line says, its outcome included (a gRPC call's comes from its
    status)."""

    outcome: str = "OK"


@contextlib.contextmanager
def _logged(rpc: str, chunk_id: str, request_id: str | None) -> Iterator[_Call]:
    """One line per request, as ``node/rpclog.py`` writes for gRPC calls, under the
    request's id when it has an acceptable one."""
    token = current_request_id.set(request_id if request_id and is_acceptable(request_id) else None)
    call, started = _Call(chunk_id), time.perf_counter()
    try:
        yield call
    except BaseException:
        call.outcome = "CANCELLED"
        raise
    finally:
        log_call(rpc, call.outcome, call, started, link="data")
        current_request_id.reset(token)


class DataLinkServer:
    def __init__(
        self, store: ChunkStore, secure: bool, max_connections: int, max_frame_bytes: int
    ) -> None:
        self._store = store
        self._secure = secure
        self._links = LinkTable()
        self._max_connections = max_connections
        self._max_frame_bytes = max_frame_bytes
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listens; returns the port (a free one when ``port`` is 0)."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: FrameConnection(MAX_HELLO_BYTES, self._accept), host, port
        )
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    def open_link(self) -> LinkSecret:
        return self._links.issue() if self._secure else INSECURE_LINK

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def _accept(self, connection: FrameConnection) -> None:
        if len(self._connections) >= self._max_connections:
            connection.close()
            return
        task = asyncio.create_task(self._run(connection))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _run(self, connection: FrameConnection) -> None:
        try:
            await self._serve(connection)
        except (LinkError, TimeoutError, ConnectionError) as exc:
            log.debug("data link from %s closed: %s", connection.peer, exc)
        finally:
            connection.close()

    async def _serve(self, connection: FrameConnection) -> None:
        async with asyncio.timeout(HELLO_TIMEOUT_S):
            seal = await answer_hello(connection, self._secret, self._max_frame_bytes)
        if seal is None:
            return
        while True:
            # Idle between requests: no block's worth held for a connection kept for later.
            connection.release_buffer()
            request = await _next_message(connection)
            if isinstance(request, Get):
                await self._answer(request, seal, connection)
            elif isinstance(request, Put):
                await self._store_chunk(request, seal, connection)
            else:
                raise LinkError("a message that is not a request")

    def _secret(self, link_id: bytes) -> LinkSecret | None:
        if not self._secure:
            return INSECURE_LINK if link_id == INSECURE_LINK_ID else None
        return self._links.get(link_id)

    async def _answer(self, get: Get, seal: Seal, connection: FrameConnection) -> None:
        # The call is logged before its last frame goes out, as a gRPC call's line is written
        # before its status: whoever got the answer finds the line.
        with _logged("GetChunk", get.chunk_id, get.request_id) as call:
            try:
                async with await self._store.open_reader(get.chunk_id) as reader:
                    async for piece in _read_ahead(reader.read(get.offset, get.length)):
                        head = BlockHead(piece.offset, piece.block_crc32c, piece.whole_block)
                        _send(connection, seal, encode_block_head(head), piece.data)
                        await _drain(connection)
                        call.size_bytes += len(piece.data)
                last = encode_end()
            except DiststorageError as exc:
                call.outcome = _failure_of(exc).name
                last = encode_error(Error(_failure_of(exc), exc.message))
        _send(connection, seal, last)
        await _drain(connection)

    async def _store_chunk(self, put: Put, seal: Seal, connection: FrameConnection) -> None:
        write = _Write(put, connection)
        refused = False
        with _logged("PutChunk", put.chunk_id, put.request_id) as call:
            try:
                result = await write.into(self._store)
            except DiststorageError as exc:
                call.outcome = _failure_of(exc).name
                answer = encode_error(Error(_failure_of(exc), exc.message))
                refused = True
            else:
                call.size_bytes = result.data_bytes
                answer = encode_stored(Stored(result.data_bytes, result.block_count))
        _send(connection, seal, answer)
        await _drain(connection)
        if refused:
            await write.skip_rest()


class _Write:
    """One PUT's frames, into a chunk writer."""

    def __init__(self, put: Put, connection: FrameConnection) -> None:
        self._put = put
        self._connection = connection
        self._ended = False

    async def into(self, store: ChunkStore) -> CommitResult:
        """Writes the blocks up to END and commits them; the chunk is discarded on any
        error, a connection lost or a frame late included."""
        writer = await store.open_writer(self._put.chunk_id, self._put.expected_bytes)
        async with writer:
            while (head := await self._next_head()) is not None:
                if head.offset != writer.written_bytes:
                    raise LinkError(f"a block at {head.offset}, {writer.written_bytes} expected")
                data = await _next_body(self._connection)
                await writer.write_block(data, head.crc32c)
            return await writer.commit()

    async def _next_head(self) -> BlockHead | None:
        message = await _next_message(self._connection)
        if message is None:
            self._ended = True
            return None
        if not isinstance(message, BlockHead):
            raise LinkError("a PUT's frames are block heads, blocks and END")
        return message

    async def skip_rest(self) -> None:
        """Reads and drops the frames of a write refused part way, up to its END, so that
        the connection can carry the next request."""
        if self._ended:
            return
        while await self._next_head() is not None:
            await _next_body(self._connection)


async def _next_body(connection: FrameConnection) -> bytes | memoryview:
    async with asyncio.timeout(IDLE_TIMEOUT_S):
        return await connection.next_body()


async def _next_message(connection: FrameConnection) -> Message:
    return decode(await _next_body(connection))


T = TypeVar("T")


async def _read_ahead(items: AsyncIterator[T]) -> AsyncIterator[T]:
    """The items, each next one fetched while the last is in use (a block read from disk
    while the one before is being sent)."""
    upcoming = asyncio.ensure_future(anext(items, None))
    try:
        while (item := await upcoming) is not None:
            upcoming = asyncio.ensure_future(anext(items, None))
            yield item
    finally:
        if not upcoming.done():
            upcoming.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await upcoming


def _send(connection: FrameConnection, seal: Seal, *bodies: bytes | memoryview) -> None:
    connection.write(*seal.frames(*bodies))


async def _drain(connection: FrameConnection) -> None:
    async with asyncio.timeout(SEND_TIMEOUT_S):
        await connection.drain()
