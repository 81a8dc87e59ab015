"""The gateway's end of a node's data link (``core/datalink.py``): its blocks over connections
of their own, kept open between reads.

Per node: the link's port and secret, asked for once over gRPC (``OpenDataLink``, through the
callable the node client gives) and asked for again when the node refuses them (it
restarted); and a few idle connections for the next reads. A connection serves one read at a
time and goes back to the pool only when its read ended cleanly (END or an ERROR answer). A
read given up half way (a deadline, a consumer gone) closes its connection: the rest of its
stream cannot be skipped.

Errors leave as core errors: a connection refused, cut or carrying a frame that fails its
authentication is NodeUnavailable; a missed deadline is TimeoutError, for the node client to
count; the node's ERROR answers map to ChunkNotFound, DataLoss, InvalidRequest and
NodeUnavailable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass

from diststorage.core.datalink import (
    BlockHead,
    Error,
    Failure,
    FrameReceiver,
    Get,
    LinkError,
    LinkSecret,
    Seal,
    decode,
    encode_get,
    say_hello,
)
from diststorage.core.errors import (
    ChunkNotFound,
    DataLoss,
    DiststorageError,
    InvalidRequest,
    NodeUnavailable,
)

# Like the gRPC channels' idle timeout: an idle connection holds its buffers for nothing.
IDLE_CONNECTION_S = 5.0
MAX_IDLE_CONNECTIONS = 8

AskLink = Callable[[], Awaitable[tuple[int, LinkSecret]]]

_ERRORS: dict[Failure, type[DiststorageError]] = {
    Failure.NOT_FOUND: ChunkNotFound,
    Failure.DATA_LOSS: DataLoss,
    Failure.INVALID: InvalidRequest,
    Failure.UNAVAILABLE: NodeUnavailable,
}


@dataclass
class _Connection:
    receiver: FrameReceiver
    seal: Seal
    idle_since: float = 0.0

    def send(self, body: bytes) -> None:
        self.receiver.write(*self.seal.frame(body))


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
        self._link: tuple[int, LinkSecret] | None = None
        self._idle: list[_Connection] = []

    async def read(
        self, chunk_id: str, offset: int, length: int, request_id: str | None, timeout_s: float
    ) -> AsyncGenerator[tuple[BlockHead, memoryview], None]:
        """Each block overlapping the range, as its head and a view of its bytes; each must
        come within ``timeout_s``."""
        connection = self._checkout() or await self._connect(timeout_s)
        clean = False
        try:
            connection.send(encode_get(Get(chunk_id, offset, length, request_id)))
            while True:
                message = decode(await self._next(connection, timeout_s))
                if message is None:
                    clean = True
                    return
                if isinstance(message, Error):
                    clean = True
                    raise _ERRORS[message.failure](f"node {self._node_id[:8]}: {message.message}")
                if not isinstance(message, BlockHead):
                    raise LinkError("the node sent a request")
                data = await self._next(connection, timeout_s)
                yield message, memoryview(data)
        except LinkError as exc:
            raise NodeUnavailable(f"node {self._node_id[:8]}: data link: {exc}") from exc
        finally:
            if clean and connection.receiver.usable:
                self._checkin(connection)
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

    def _checkin(self, connection: _Connection) -> None:
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
            port, secret = self._link
            connection = await self._handshake(port, secret, timeout_s)
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
                    lambda: FrameReceiver(max_frame), self._host, port
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
