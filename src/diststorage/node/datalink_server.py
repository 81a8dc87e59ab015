"""The node's end of the data link (``core/datalink.py``): GetChunk's blocks over connections
of its own, for gateways holding a link secret from ``OpenDataLink``.

Each connection serves one request at a time: a GET's blocks are read, checked against their
CRCs (as the gRPC GetChunk does) and sent as they come, the next block read from disk while
the last one is still going out. Limits: connections beyond ``max_connections`` are closed at
once; a hello must come within ``HELLO_TIMEOUT_S`` and each request within ``IDLE_TIMEOUT_S``
of the last; a gateway that stops taking a block for ``SEND_TIMEOUT_S`` loses the connection.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TypeVar

from diststorage.core.datalink import (
    INSECURE_LINK,
    INSECURE_LINK_ID,
    BlockHead,
    Error,
    Failure,
    Get,
    LinkError,
    LinkSecret,
    Seal,
    answer_hello,
    decode,
    encode_block_head,
    encode_end,
    encode_error,
    new_link_secret,
    read_frame,
)
from diststorage.core.errors import DataLoss, DiststorageError, InvalidRequest, NotFound
from diststorage.core.logs import fields
from diststorage.core.request_ids import current_request_id, is_acceptable
from diststorage.node.chunkstore import ChunkStore

log = logging.getLogger(__name__)
calls = logging.getLogger("diststorage.node.calls")

HELLO_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 60.0
SEND_TIMEOUT_S = 60.0
# Link secrets kept: each gateway holds one per node, so this is gateways × restarts.
MAX_LINKS = 4096
_MAX_REQUEST_BYTES = 1024


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


def _failure_of(exc: DiststorageError) -> Failure:
    if isinstance(exc, NotFound):
        return Failure.NOT_FOUND
    if isinstance(exc, DataLoss):
        return Failure.DATA_LOSS
    if isinstance(exc, InvalidRequest):
        return Failure.INVALID
    return Failure.UNAVAILABLE


class DataLinkServer:
    def __init__(self, store: ChunkStore, secure: bool, max_connections: int) -> None:
        self._store = store
        self._secure = secure
        self._links = LinkTable()
        self._max_connections = max_connections
        self._connections: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listens; returns the port (a free one when ``port`` is 0)."""
        self._server = await asyncio.start_server(self._accept, host, port)
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

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._connections) >= self._max_connections:
            writer.close()
            return
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except (LinkError, TimeoutError, ConnectionError) as exc:
            log.debug("data link from %s closed: %s", writer.get_extra_info("peername"), exc)
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(HELLO_TIMEOUT_S):
            ends = await answer_hello(reader, writer, self._secret)
        if ends is None:
            return
        unseal, seal = ends
        while True:
            async with asyncio.timeout(IDLE_TIMEOUT_S):
                header, body = await read_frame(reader, _MAX_REQUEST_BYTES)
            request = decode(unseal.body(header, body))
            if not isinstance(request, Get):
                raise LinkError("a request that is not a GET")
            await self._answer(request, seal, writer)

    def _secret(self, link_id: bytes) -> LinkSecret | None:
        if not self._secure:
            return INSECURE_LINK if link_id == INSECURE_LINK_ID else None
        return self._links.get(link_id)

    async def _answer(self, get: Get, seal: Seal, writer: asyncio.StreamWriter) -> None:
        request_id = get.request_id if get.request_id and is_acceptable(get.request_id) else None
        token = current_request_id.set(request_id)
        started, sent, outcome = time.perf_counter(), 0, "OK"
        try:
            try:
                async with await self._store.open_reader(get.chunk_id) as reader:
                    async for piece in _read_ahead(reader.read(get.offset, get.length)):
                        head = BlockHead(piece.offset, piece.block_crc32c, piece.whole_block)
                        await _send(writer, seal, encode_block_head(head))
                        await _send(writer, seal, piece.data)
                        sent += len(piece.data)
                await _send(writer, seal, encode_end())
            except DiststorageError as exc:
                outcome = _failure_of(exc).name
                await _send(writer, seal, encode_error(Error(_failure_of(exc), exc.message)))
        except BaseException:
            outcome = "CANCELLED"
            raise
        finally:
            calls.info(
                "GetChunk %s",
                outcome,
                extra=fields(
                    {
                        "rpc": "GetChunk",
                        "link": "data",
                        "code": outcome,
                        "chunk_id": get.chunk_id,
                        "bytes": sent,
                        "duration_s": round(time.perf_counter() - started, 6),
                    }
                ),
            )
            current_request_id.reset(token)


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


async def _send(writer: asyncio.StreamWriter, seal: Seal, body: bytes | memoryview) -> None:
    header, sealed = seal.frame(body)
    writer.write(header)
    writer.write(sealed)
    async with asyncio.timeout(SEND_TIMEOUT_S):
        await writer.drain()
