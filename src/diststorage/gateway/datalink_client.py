"""The gateway's end of a node's data link (``core/datalink.py``): a node's chunks read and
written over connections of their own, kept open between requests.

Per node: the link's port and secret, asked for once over gRPC (``OpenDataLink``, through the
callable the node client gives) and asked for again when the node refuses them (it
restarted); and a few idle connections for the next requests. A connection serves one request
at a time and goes back to the pool only when it ended cleanly (END, STORED or an ERROR
answer). A read given up half way (a deadline, a consumer gone) or a write cancelled closes
its connection: the rest of its stream cannot be skipped, and a write's node discards the
chunk when its connection goes.

Errors leave as core errors: a connection refused, cut or carrying a frame that fails its
authentication is NodeUnavailable; a missed deadline is TimeoutError, for the node client to
count; the node's ERROR answers map to ChunkNotFound, DataLoss, InvalidRequest,
InsufficientStorage, AlreadyExists and NodeUnavailable.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import NoReturn

from diststorage.core.datalink import (
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
    decode,
    encode_block_head,
    encode_end,
    encode_get,
    encode_put,
    say_hello,
)
from diststorage.core.errors import (
    AlreadyExists,
    ChunkNotFound,
    DataLoss,
    DiststorageError,
    InsufficientStorage,
    InvalidRequest,
    NodeUnavailable,
)

# Like the gRPC channels' idle timeout: an idle connection holds its buffers for nothing.
IDLE_CONNECTION_S = 5.0
MAX_IDLE_CONNECTIONS = 8


@dataclass(frozen=True, slots=True)
class LinkOffer:
    """What ``OpenDataLink`` answered: where the link listens, its secret, and whether it
    takes writes (a node from before PUT on the link only serves reads)."""

    port: int
    secret: LinkSecret
    takes_puts: bool


AskLink = Callable[[], Awaitable[LinkOffer]]

_ERRORS: dict[Failure, type[DiststorageError]] = {
    Failure.NOT_FOUND: ChunkNotFound,
    Failure.DATA_LOSS: DataLoss,
    Failure.INVALID: InvalidRequest,
    Failure.UNAVAILABLE: NodeUnavailable,
    Failure.NO_SPACE: InsufficientStorage,
    Failure.EXISTS: AlreadyExists,
}


def node_error(node_id: str, error: Error) -> DiststorageError:
    """The core error a node's ERROR answer stands for."""
    return _ERRORS[error.failure](f"node {node_id[:8]}: {error.message}")


@dataclass
class _Connection:
    receiver: FrameConnection
    seal: Seal
    idle_since: float = 0.0

    def send(self, *bodies: bytes | memoryview) -> None:
        """The bodies as frames, sealed in order and handed to the transport together."""
        self.receiver.write(*self.seal.frames(*bodies))


class LinkUpload:
    """One chunk being written over the link: ``send`` each block, then ``finish``; ``cancel``
    on any failure (the connection closes and the node discards what it received).

    ``send`` returns once the block is on its way (the transport holds less than a block
    beyond it); a node that refused the write part way (its ERROR, read between blocks)
    makes the next ``send`` or ``finish`` raise that error."""

    def __init__(
        self, link: DataLink, connection: _Connection, node_id: str, timeout_s: float
    ) -> None:
        self._link = link
        self._connection = connection
        self._node_id = node_id
        self._timeout_s = timeout_s
        self._offset = 0
        self._over = False

    async def send(self, block: bytes, crc32c: int) -> None:
        with self._link.errors():
            self._raise_early_answer()
            self._connection.send(encode_block_head(BlockHead(self._offset, crc32c, True)), block)
            self._offset += len(block)
            async with asyncio.timeout(self._timeout_s):
                await self._connection.receiver.drain()

    async def finish(self) -> Stored:
        with self._link.errors():
            self._raise_early_answer()
            self._connection.send(encode_end())
            answer = await self._link.next_message(self._connection, self._timeout_s)
            return self._end_with(answer)

    def cancel(self) -> None:
        if not self._over:
            self._over = True
            self._connection.receiver.close()

    def _raise_early_answer(self) -> None:
        """Raises the node's ERROR if it refused the write part way (anything else before
        the write's END breaks the link)."""
        if self._connection.receiver.pending:
            self._refuse(decode(self._connection.receiver.take()))

    def _end_with(self, answer: Message) -> Stored:
        """The node's answer to the write's END: STORED (the connection goes back to the
        pool), or its ERROR raised."""
        if isinstance(answer, Stored):
            self._over = True
            self._link.checkin(self._connection)
            return answer
        self._refuse(answer)

    def _refuse(self, answer: Message) -> NoReturn:
        """Closes the connection (the node may still be skipping the rest of the write) and
        raises the node's ERROR, or LinkError for an answer that is none."""
        self.cancel()
        if isinstance(answer, Error):
            raise node_error(self._node_id, answer)
        raise LinkError("the node answered a write with neither STORED nor ERROR")


class DataLink:
    def __init__(
        self,
        node_id: str,
        host: str,
        ask: AskLink,
        max_frame_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._node_id = node_id
        self._host = host.strip("[]")
        self._ask = ask
        self._max_frame_bytes = max_frame_bytes
        self._clock = clock
        self._link: LinkOffer | None = None
        self._idle: list[_Connection] = []

    async def takes_puts(self) -> bool:
        """Whether the node's link stores chunks (asks for the link when none is known)."""
        if self._link is None:
            self._link = await self._ask()
        return self._link.takes_puts

    async def put(
        self,
        chunk_id: str,
        expected_bytes: int,
        request_id: str | None,
        connect_timeout_s: float,
        block_timeout_s: float,
    ) -> LinkUpload:
        """A write of a chunk begun: the connection taken (``connect_timeout_s``) and the PUT
        sent; each block and the answer then have ``block_timeout_s``."""
        with self.errors():
            connection = self._checkout() or await self._connect(connect_timeout_s)
            try:
                connection.send(encode_put(Put(chunk_id, expected_bytes, request_id)))
            except BaseException:
                connection.receiver.close()
                raise
        return LinkUpload(self, connection, self._node_id, block_timeout_s)

    @contextlib.contextmanager
    def errors(self) -> Iterator[None]:
        """A broken connection as NodeUnavailable; deadlines pass as TimeoutError."""
        try:
            yield
        except LinkError as exc:
            raise NodeUnavailable(f"node {self._node_id[:8]}: data link: {exc}") from exc

    async def next_message(self, connection: _Connection, timeout_s: float) -> Message:
        return decode(await self._next(connection, timeout_s))

    async def read(
        self, chunk_id: str, offset: int, length: int, request_id: str | None, timeout_s: float
    ) -> AsyncGenerator[tuple[BlockHead, memoryview], None]:
        """Each block overlapping the range, as its head and a view of its bytes; each must
        come within ``timeout_s``."""
        connection = self._checkout() or await self._connect(timeout_s)
        clean = False
        try:
            with self.errors():
                connection.send(encode_get(Get(chunk_id, offset, length, request_id)))
                while True:
                    message = await self.next_message(connection, timeout_s)
                    if message is None:
                        clean = True
                        return
                    if isinstance(message, Error):
                        clean = True
                        raise node_error(self._node_id, message)
                    if not isinstance(message, BlockHead):
                        raise LinkError("the node answered a read with something else")
                    data = await self._next(connection, timeout_s)
                    yield message, memoryview(data)
        finally:
            if clean:
                self.checkin(connection)
            else:
                connection.receiver.close()

    @staticmethod
    async def _next(connection: _Connection, timeout_s: float) -> bytes | memoryview:
        async with asyncio.timeout(timeout_s):
            return await connection.receiver.next_body()

    def _checkout(self) -> _Connection | None:
        now = self._clock()
        while self._idle:
            connection = self._idle.pop()
            if connection.receiver.usable and now - connection.idle_since < IDLE_CONNECTION_S:
                return connection
            connection.receiver.close()
        return None

    def checkin(self, connection: _Connection) -> None:
        """Back to the pool, after a request that ended cleanly; closed if it broke."""
        if not connection.receiver.usable:
            connection.receiver.close()
            return
        connection.receiver.release_buffer()
        connection.idle_since = self._clock()
        self._idle.append(connection)
        while len(self._idle) > MAX_IDLE_CONNECTIONS:
            self._idle.pop(0).receiver.close()

    async def _connect(self, timeout_s: float) -> _Connection:
        """A connection through the handshake; the link asked for again if the node refuses
        it (a node that restarted knows no secret from before)."""
        for _ in range(2):
            if self._link is None:
                self._link = await self._ask()
            connection = await self._handshake(self._link.port, self._link.secret, timeout_s)
            if connection is not None:
                return connection
            self._link = None
        raise NodeUnavailable(f"node {self._node_id[:8]} refused its data link")

    async def _handshake(
        self, port: int, secret: LinkSecret, timeout_s: float
    ) -> _Connection | None:
        loop = asyncio.get_running_loop()
        max_frame = self._max_frame_bytes
        try:
            async with asyncio.timeout(timeout_s):
                _, receiver = await loop.create_connection(
                    lambda: FrameConnection(max_frame), self._host, port
                )
                try:
                    outbound = await say_hello(receiver, secret)
                except BaseException:
                    receiver.close()
                    raise
        except TimeoutError:
            raise  # an OSError too, but a deadline missed: the node client counts it
        except (OSError, LinkError) as exc:
            raise NodeUnavailable(f"node {self._node_id[:8]}: data link: {exc}") from exc
        if outbound is None:
            receiver.close()
            return None
        return _Connection(receiver, outbound)

    def forget(self) -> None:
        """Closes the idle connections and forgets the secret (the node's address changed, or
        the gateway is closing)."""
        for connection in self._idle:
            connection.receiver.close()
        self._idle.clear()
        self._link = None
