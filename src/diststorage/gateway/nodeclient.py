"""Talking to storage nodes over gRPC, with a deadline on every call.

This is the one place gRPC errors enter the gateway; they leave it as core errors:
UNAVAILABLE / DEADLINE_EXCEEDED / timeouts / a call on a channel already closed →
NodeUnavailable, NOT_FOUND → ChunkNotFound, DATA_LOSS → DataLoss, RESOURCE_EXHAUSTED →
InsufficientStorage. Answers leave it as plain records (``StoredChunkReceipt``,
``ChunkPage``, ``BlockPiece``), never as protobuf messages.

Every call carries the current request's id as metadata (``core.request_ids``), is timed into
``diststorage_node_rpc_seconds``, and a deadline it misses is counted against its node
(``datapath.NodeStats``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import grpc
import grpc.aio

from diststorage.core.cluster_tls import PLAINTEXT_LINKS, ClusterLinks
from diststorage.core.datalink import LinkSecret
from diststorage.core.errors import (
    AlreadyExists,
    ChunkNotFound,
    DataLoss,
    DiststorageError,
    InsufficientStorage,
    InvalidRequest,
    NodeUnavailable,
)
from diststorage.core.request_ids import current_request_id, grpc_metadata
from diststorage.core.settings import split_host_port
from diststorage.core.tasks import BackgroundTasks
from diststorage.erasure import Block
from diststorage.gateway.blockwire import put_block_message, put_header_message
from diststorage.gateway.datalink_client import DataLink, LinkOffer, LinkUpload
from diststorage.gateway.datapath import DataPathMetrics, NodeCall
from diststorage.proto import storage_pb2 as pb
from diststorage.proto.chunkwire import (
    GET_CHUNK_METHOD,
    GET_CHUNK_ONCE_METHOD,
    WireError,
    decode_answer,
)
from diststorage.proto.storage_pb2_grpc import ChunkServiceStub

log = logging.getLogger(__name__)

# A channel replaced by a new one is closed after this long, so calls on it can finish.
RETIRED_GRACE_S = 30.0

# A channel with no call for this long closes its connection. gRPC keeps a connection's
# receive buffers at the size its largest reads grew them to: after a download, about
# 1.3 MiB per node that the uploads after it never use (8 MiB of a gateway's peak in a
# 6-node cluster). Reconnecting is cheap: a 1 MiB GET after an idle spell took 14–21 ms
# on loopback, against 13–17 ms on warm connections.
IDLE_CONNECTION_MS = 5_000

_PUT_CHUNK_METHOD = f"/{pb.DESCRIPTOR.services_by_name['ChunkService'].full_name}/PutChunk"

_EOF: object = getattr(grpc.aio, "EOF")  # noqa: B009 (absent from the type stubs)

_ERRORS: dict[grpc.StatusCode, type[DiststorageError]] = {
    grpc.StatusCode.NOT_FOUND: ChunkNotFound,
    grpc.StatusCode.DATA_LOSS: DataLoss,
    grpc.StatusCode.RESOURCE_EXHAUSTED: InsufficientStorage,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
}


def _ignore(node_id: str) -> None:
    pass


@contextlib.contextmanager
def translated(node_id: str, late: Callable[[str], None] = _ignore) -> Iterator[None]:
    """Turns gRPC failures and deadlines of one node's call into core errors; a missed
    deadline is also told to ``late``."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            late(node_id)
        kind = _ERRORS.get(exc.code(), NodeUnavailable)
        raise kind(f"node {node_id[:8]}: {exc.code().name}: {exc.details()}") from exc
    except TimeoutError as exc:
        late(node_id)
        raise NodeUnavailable(f"node {node_id[:8]} did not answer in time") from exc
    except grpc.aio.UsageError as exc:
        # A call begun on a channel retired meanwhile (the node came back, or moved).
        raise NodeUnavailable(f"node {node_id[:8]}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class StoredChunkReceipt:
    """A node's word that it stored a chunk durably (named as in PutChunkResponse)."""

    chunk_id: str
    size_bytes: int
    block_count: int


@dataclass(frozen=True, slots=True)
class ListedChunk:
    chunk_id: str
    size_bytes: int
    mtime: float
    """When the node wrote the chunk, in seconds since the epoch on the node's clock."""


class _NoDataLink(Exception):
    """The node predates the data link: its reads go over gRPC."""


@dataclass(frozen=True, slots=True)
class ChunkPage:
    chunks: tuple[ListedChunk, ...]
    truncated: bool
    """More chunks follow the last one here."""


@dataclass(frozen=True, slots=True)
class BlockPiece:
    data: Block
    """A view into the message it came in (proto/chunkwire.py): never copied on the way."""
    offset: int
    block_crc32c: int
    whole_block: bool


class _PutTimer:
    """Times one chunk's write into ``diststorage_node_rpc_seconds``, once, however it ends."""

    def __init__(self, node_id: str, metrics: DataPathMetrics) -> None:
        self._node_id = node_id
        self._metrics = metrics
        self._started = time.perf_counter()
        self._timed = False

    def stop(self) -> None:
        if not self._timed:
            self._timed = True
            elapsed_s = time.perf_counter() - self._started
            self._metrics.observe_rpc(NodeCall.PUT_CHUNK, self._node_id, elapsed_s)


class ChunkUpload:
    """One PutChunk stream. ``send`` each block, then ``finish``; ``cancel`` on any failure.

    Cancellation: cancelling a task blocked in ``send``/``finish`` leaves the stream open;
    the owner must call ``cancel`` (the node then discards the temp file).
    """

    def __init__(
        self,
        node_id: str,
        call: grpc.aio.StreamUnaryCall[bytes, pb.PutChunkResponse],
        timeout_s: float,
        metrics: DataPathMetrics,
    ) -> None:
        self.node_id = node_id
        self._call = call
        self._timeout_s = timeout_s
        self._metrics = metrics
        self._timer = _PutTimer(node_id, metrics)

    async def send(self, block: bytes, crc32c: int) -> None:
        """Sends one block, framed as a PutChunk message (``blockwire``)."""
        message = put_block_message(block, crc32c)
        with translated(self.node_id, self._metrics.stats.deadline_missed):
            async with asyncio.timeout(self._timeout_s):
                try:
                    await self._call.write(message)
                except asyncio.InvalidStateError:
                    await self._raise_final_status()

    async def finish(self) -> StoredChunkReceipt:
        try:
            with translated(self.node_id, self._metrics.stats.deadline_missed):
                async with asyncio.timeout(self._timeout_s):
                    try:
                        await self._call.done_writing()
                    except asyncio.InvalidStateError:
                        await self._raise_final_status()
                    return _receipt(await self._call)
        finally:
            self._timer.stop()

    async def _raise_final_status(self) -> None:
        """The node ended the call early (it died, or refused a block): say why."""
        code = await self._call.code()
        details = await self._call.details()
        kind = _ERRORS.get(code, NodeUnavailable)
        raise kind(f"node {self.node_id[:8]} ended the upload: {code.name}: {details}")

    def cancel(self) -> None:
        self._call.cancel()
        self._timer.stop()


class LinkChunkUpload:
    """One chunk written over the node's data link (``datalink_client.LinkUpload``): the same
    contract as ``ChunkUpload``, its deadlines counted against the node the same way."""

    def __init__(
        self, node_id: str, chunk_id: str, upload: LinkUpload, metrics: DataPathMetrics
    ) -> None:
        self.node_id = node_id
        self._chunk_id = chunk_id
        self._upload = upload
        self._late = metrics.stats.deadline_missed
        self._timer = _PutTimer(node_id, metrics)

    async def send(self, block: bytes, crc32c: int) -> None:
        with translated(self.node_id, self._late):
            await self._upload.send(block, crc32c)

    async def finish(self) -> StoredChunkReceipt:
        try:
            with translated(self.node_id, self._late):
                stored = await self._upload.finish()
            return StoredChunkReceipt(self._chunk_id, stored.size_bytes, stored.block_count)
        finally:
            self._timer.stop()

    def cancel(self) -> None:
        self._upload.cancel()
        self._timer.stop()


class NodeClient:
    def __init__(
        self,
        node_id: str,
        address: str,
        rpc_timeout_s: float,
        block_timeout_s: float,
        max_message_bytes: int,
        links: ClusterLinks = PLAINTEXT_LINKS,
        metrics: DataPathMetrics | None = None,
    ) -> None:
        self.node_id = node_id
        self.address = address
        self._metrics = metrics if metrics is not None else DataPathMetrics()
        self._late = self._metrics.stats.deadline_missed
        self._rpc_timeout_s = rpc_timeout_s
        self._block_timeout_s = block_timeout_s
        self._channel = links.channel(
            address,
            options=[
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.keepalive_time_ms", 10_000),
                ("grpc.keepalive_timeout_ms", 5_000),
                # gRPC's default backoff grows to 120 s; a restarted node must be usable again
                # within a heartbeat or two.
                ("grpc.initial_reconnect_backoff_ms", 200),
                ("grpc.max_reconnect_backoff_ms", 2_000),
                ("grpc.client_idle_timeout_ms", IDLE_CONNECTION_MS),
            ],
        )
        self._stub = ChunkServiceStub(self._channel)
        # PutChunk with messages the caller serialized (blockwire): no serializer.
        self._put_chunk: grpc.aio.StreamUnaryMultiCallable[bytes, pb.PutChunkResponse] = (
            self._channel.stream_unary(
                _PUT_CHUNK_METHOD,
                request_serializer=None,
                response_deserializer=pb.PutChunkResponse.FromString,
            )
        )
        # GetChunk answers unparsed: chunkwire reads them without copying the block.
        self._get_chunk: grpc.aio.UnaryStreamMultiCallable[pb.GetChunkRequest, bytes] = (
            self._channel.unary_stream(
                GET_CHUNK_METHOD,
                request_serializer=pb.GetChunkRequest.SerializeToString,
                response_deserializer=None,
            )
        )
        self._get_chunk_once: grpc.aio.UnaryUnaryMultiCallable[pb.GetChunkRequest, bytes] = (
            self._channel.unary_unary(
                GET_CHUNK_ONCE_METHOD,
                request_serializer=pb.GetChunkRequest.SerializeToString,
                response_deserializer=None,
            )
        )
        self._reads_once = True
        # Reads' bytes go over the node's data link; over gRPC only for a node without one.
        self._data_link = DataLink(
            node_id, split_host_port(address)[0], self._open_data_link, max_message_bytes
        )
        self._over_link = True

    async def start_put(self, chunk_id: str, expected_bytes: int) -> ChunkUpload | LinkChunkUpload:
        """A chunk's write begun, over the node's data link where it takes writes, else over
        PutChunk. The write as a whole has no fixed deadline (a chunk may be large); its start,
        every block and the final answer have one each."""
        if self._over_link:
            try:
                if await self._data_link.takes_puts():
                    return await self._put_over_link(chunk_id, expected_bytes)
            except _NoDataLink:
                self._without_data_link()
        # Called without an iterator, grpc.aio hands back a call to write() to.
        # wait_for_ready: a node that just restarted heartbeats before this channel has
        # reconnected; the header's deadline still bounds the wait.
        call = self._put_chunk(  # type: ignore[call-arg]
            wait_for_ready=True, metadata=grpc_metadata()
        )
        upload = ChunkUpload(self.node_id, call, self._block_timeout_s, self._metrics)
        with translated(self.node_id, self._late):
            try:
                async with asyncio.timeout(self._rpc_timeout_s):
                    await call.write(put_header_message(chunk_id, expected_bytes))
            except BaseException:
                call.cancel()
                raise
        return upload

    async def put_once(self, chunk_id: str, data: bytes, crc32c: int) -> StoredChunkReceipt:
        """Stores a chunk of one block in one round trip."""
        request = pb.PutChunkOnceRequest(
            header=pb.ChunkHeader(chunk_id=chunk_id, expected_bytes=len(data)),
            block=pb.Block(data=data, crc32c=crc32c),
        )
        with self._timed(NodeCall.PUT_CHUNK_ONCE), translated(self.node_id, self._late):
            response: pb.PutChunkResponse = await self._stub.PutChunkOnce(
                request, timeout=self._rpc_timeout_s, wait_for_ready=True, metadata=grpc_metadata()
            )
        return _receipt(response)

    @contextlib.contextmanager
    def _timed(self, call: NodeCall) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._metrics.observe_rpc(call, self.node_id, time.perf_counter() - started)

    async def read(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]:
        """Yields the blocks overlapping the range; each must arrive within the block timeout
        (times ``patience``, for a last-resort try).

        ``wait_for_ready`` (for a node known to be up) lets the call wait, within that timeout,
        for a channel still reconnecting instead of failing at once.
        """
        block_timeout_s = self._block_timeout_s * patience
        if self._over_link:
            try:
                async for piece in self._read_over_link(chunk_id, offset, length, block_timeout_s):
                    yield piece
                return
            except _NoDataLink:
                self._without_data_link()
        call = self._get_chunk(
            pb.GetChunkRequest(chunk_id=chunk_id, offset=offset, length=length),
            wait_for_ready=wait_for_ready,
            metadata=grpc_metadata(),
        )
        started = time.perf_counter()
        try:
            while True:
                with translated(self.node_id, self._late):
                    async with asyncio.timeout(block_timeout_s):
                        message = await call.read()
                if message is _EOF:
                    return
                assert isinstance(message, bytes)
                yield self._piece(message)
        finally:
            call.cancel()
            elapsed_s = time.perf_counter() - started
            self._metrics.observe_rpc(NodeCall.GET_CHUNK, self.node_id, elapsed_s)

    async def read_once(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]:
        """Like ``read`` for a range of one block, in one round trip (a unary call costs the
        gateway about a third less CPU than a stream). A node from before GetChunkOnce is
        read with streams instead, from then on: gateways may be upgraded before nodes."""
        message: bytes | None = None
        if self._over_link:
            async for piece in self.read(chunk_id, offset, length, wait_for_ready, patience):
                yield piece
            return
        if self._reads_once:
            timeout_s = self._block_timeout_s * patience
            with self._timed(NodeCall.GET_CHUNK_ONCE), translated(self.node_id, self._late):
                try:
                    async with asyncio.timeout(timeout_s):
                        message = await self._get_chunk_once(
                            pb.GetChunkRequest(chunk_id=chunk_id, offset=offset, length=length),
                            timeout=timeout_s,
                            wait_for_ready=wait_for_ready,
                            metadata=grpc_metadata(),
                        )
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                        raise
                    log.info("node %s: no GetChunkOnce; read with streams", self.node_id[:8])
                    self._reads_once = False
        if message is None:
            async for piece in self.read(chunk_id, offset, length, wait_for_ready, patience):
                yield piece
        elif message:
            yield self._piece(message)

    def _piece(self, message: bytes) -> BlockPiece:
        try:
            answer = decode_answer(message)
        except WireError as exc:
            raise DataLoss(f"node {self.node_id[:8]} sent an unreadable block: {exc}") from exc
        return BlockPiece(answer.data, answer.offset, answer.block_crc32c, answer.whole_block)

    async def delete(self, chunk_id: str) -> bool:
        with self._timed(NodeCall.DELETE_CHUNK), translated(self.node_id, self._late):
            response = await self._stub.DeleteChunk(
                pb.DeleteChunkRequest(chunk_id=chunk_id),
                timeout=self._rpc_timeout_s,
                metadata=grpc_metadata(),
            )
        return bool(response.existed)

    async def list_chunks(self, after: str, limit: int) -> ChunkPage:
        """One page of the node's chunks in id order, starting after ``after``."""
        with self._timed(NodeCall.LIST_CHUNKS), translated(self.node_id, self._late):
            response: pb.ListChunksResponse = await self._stub.ListChunks(
                pb.ListChunksRequest(after=after, limit=limit),
                timeout=self._rpc_timeout_s,
                metadata=grpc_metadata(),
            )
        chunks = tuple(ListedChunk(c.chunk_id, c.size_bytes, c.mtime) for c in response.chunks)
        return ChunkPage(chunks, response.truncated)

    async def _read_over_link(
        self, chunk_id: str, offset: int, length: int, block_timeout_s: float
    ) -> AsyncIterator[BlockPiece]:
        started = time.perf_counter()
        blocks = self._data_link.read(
            chunk_id, offset, length, current_request_id.get(), block_timeout_s
        )
        try:
            with translated(self.node_id, self._late):
                async for head, data in blocks:
                    yield BlockPiece(data, head.offset, head.crc32c, head.whole_block)
        finally:
            await blocks.aclose()
            elapsed_s = time.perf_counter() - started
            self._metrics.observe_rpc(NodeCall.GET_CHUNK, self.node_id, elapsed_s)

    def _without_data_link(self) -> None:
        """The node predates the data link: its reads and writes go over gRPC from now on."""
        log.info("node %s: no data link; its chunks go over gRPC", self.node_id[:8])
        self._over_link = False

    async def _put_over_link(self, chunk_id: str, expected_bytes: int) -> LinkChunkUpload:
        with translated(self.node_id, self._late):
            upload = await self._data_link.put(
                chunk_id,
                expected_bytes,
                current_request_id.get(),
                self._rpc_timeout_s,
                self._block_timeout_s,
            )
        return LinkChunkUpload(self.node_id, chunk_id, upload, self._metrics)

    async def _open_data_link(self) -> LinkOffer:
        """The data link's port and a secret for it, asked over the mTLS channel."""
        with translated(self.node_id, self._late):
            try:
                response = await self._stub.OpenDataLink(
                    pb.OpenDataLinkRequest(),
                    timeout=self._rpc_timeout_s,
                    wait_for_ready=True,
                    metadata=grpc_metadata(),
                )
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                    raise _NoDataLink from exc
                raise
        secret = LinkSecret(response.link_id, response.key)
        return LinkOffer(response.port, secret, response.takes_puts)

    async def close(self, grace_s: float | None = None) -> None:
        self._data_link.forget()
        await self._channel.close(grace=grace_s)


class NodeClients:
    """One channel per node, replaced when a node announces a new address.

    Build with ``await NodeClients.open(...)``; ``close`` closes every channel, those retired
    included.
    """

    def __init__(
        self,
        address_of: Callable[[str], str | None],
        rpc_timeout_s: float,
        block_timeout_s: float,
        max_message_bytes: int,
        links: ClusterLinks = PLAINTEXT_LINKS,
        metrics: DataPathMetrics | None = None,
    ) -> None:
        self._address_of = address_of
        self._links = links
        self._metrics = metrics if metrics is not None else DataPathMetrics()
        self._rpc_timeout_s = rpc_timeout_s
        self._block_timeout_s = block_timeout_s
        self._max_message_bytes = max_message_bytes
        self._clients: dict[str, NodeClient] = {}
        self._retiring = BackgroundTasks("retired node channels")

    @classmethod
    async def open(
        cls,
        address_of: Callable[[str], str | None],
        rpc_timeout_s: float,
        block_timeout_s: float,
        max_message_bytes: int,
        links: ClusterLinks = PLAINTEXT_LINKS,
        metrics: DataPathMetrics | None = None,
    ) -> NodeClients:
        """Clients ready to retire replaced channels in the background; their channels run
        over ``links`` (the gateway's: mutual TLS under the cluster CA); their calls are
        measured into ``metrics``."""
        clients = cls(address_of, rpc_timeout_s, block_timeout_s, max_message_bytes, links, metrics)
        await clients._retiring.open()
        return clients

    def get(self, node_id: str) -> NodeClient | None:
        """The client of the node at its last announced address; None for an unknown node."""
        address = self._address_of(node_id)
        if address is None:
            return None
        client = self._clients.get(node_id)
        if client is None or client.address != address:
            if client is not None:
                self._retire(client)
            client = NodeClient(
                node_id,
                address,
                self._rpc_timeout_s,
                self._block_timeout_s,
                self._max_message_bytes,
                self._links,
                self._metrics,
            )
            self._clients[node_id] = client
        return client

    def reset(self, node_id: str) -> None:
        """Drops the node's channel, so the next call connects afresh: a node back from the
        dead should not wait out gRPC's reconnect back-off."""
        client = self._clients.pop(node_id, None)
        if client is not None:
            self._retire(client)

    def _retire(self, client: NodeClient) -> None:
        """Closes a replaced channel once the calls still on it have had time to end."""
        if self._retiring.closed:
            return  # shutting down: close() ends every call now, no grace is left to give
        self._retiring.start(client.close(RETIRED_GRACE_S), name=f"retire {client.address}")

    async def close(self) -> None:
        # First, so that no channel is retired with a grace while the others close.
        await self._retiring.aclose()
        for client in self._clients.values():
            await client.close()
        self._clients.clear()


def _receipt(response: pb.PutChunkResponse) -> StoredChunkReceipt:
    return StoredChunkReceipt(response.chunk_id, response.size_bytes, response.block_count)
