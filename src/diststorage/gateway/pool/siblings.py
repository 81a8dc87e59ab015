"""The private channel between the worker processes of one gateway: gRPC over unix sockets.

Each worker serves ``Siblings`` on ``w<index>.sock`` in the run folder and dials the others'.
Two calls, bytes in and bytes out (no .proto: nothing outside one gateway ever speaks them):

- ``Heartbeat``: a node's beat, as the ``HeartbeatRequest`` it sent (without its corrupt
  chunks, which the worker that received it deals with). A node's heartbeat channel is one
  TCP connection, which the kernel hands to one worker only; that worker checks the beat
  (its caller's mTLS certificate, heartbeats.py) and relays it here, so every worker's node
  table hears every node. The relay is fire-and-forget with a short deadline: a sibling that
  is restarting misses beats and hears the next ones.
- ``Metrics``: the worker's own Prometheus exposition, which the worker a scrape reached
  merges with its own (``merge``); ``HttpCounters``: its HTTP counters alone, for the
  dashboard's throughput in the others (``counters``).

Authentication: the file system's. The run folder is created owner-only (0700) by the
supervisor (``tempfile.mkdtemp``), so connecting to a socket in it (which needs search
permission on the folder) is open to this gateway's user and root alone, both of whom can
read its data folder anyway. What arrives has been checked already by the worker that relays
it; the receiving side still parses it strictly, as it would a node's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import grpc
import grpc.aio

from diststorage.gateway.pool.role import WorkerRole

log = logging.getLogger(__name__)

SERVICE = "diststorage.gateway.Siblings"
HEARTBEAT_METHOD = f"/{SERVICE}/Heartbeat"
METRICS_METHOD = f"/{SERVICE}/Metrics"
HTTP_COUNTERS_METHOD = f"/{SERVICE}/HttpCounters"
RELAY_TIMEOUT_S = 1.0
SCRAPE_TIMEOUT_S = 3.0
# Relays in flight per sibling: past this, beats to a stuck sibling are dropped (the next
# ones will do), so a hung sibling cannot make this worker hold an unbounded backlog.
MAX_RELAYS_IN_FLIGHT = 64
# A restarted sibling is dialled again within a second, not after gRPC's default backoff.
_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

HeartbeatSink = Callable[[bytes], Awaitable[None]]
Scrape = Callable[[], bytes]


class SiblingServer:
    """This worker's end: takes relayed beats into ``on_heartbeat`` and answers scrapes."""

    def __init__(
        self,
        role: WorkerRole,
        on_heartbeat: HeartbeatSink,
        scrape: Scrape,
        scrape_http: Scrape | None = None,
    ) -> None:
        self._role = role
        self._on_heartbeat = on_heartbeat
        self._scrape = scrape
        self._scrape_http = scrape_http or scrape
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        path = self._role.socket_path(self._role.index)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by this worker's previous life
        server = grpc.aio.server()
        server.add_generic_rpc_handlers(
            [
                grpc.method_handlers_generic_handler(
                    SERVICE,
                    {
                        "Heartbeat": grpc.unary_unary_rpc_method_handler(self._heartbeat),
                        "Metrics": grpc.unary_unary_rpc_method_handler(self._metrics),
                        "HttpCounters": grpc.unary_unary_rpc_method_handler(self._http_counters),
                    },
                )
            ]
        )
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        self._server = server

    async def _heartbeat(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        await self._on_heartbeat(request)
        return b""

    async def _metrics(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        return self._scrape()

    async def _http_counters(
        self, request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> bytes:
        return self._scrape_http()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(0.5)
            self._server = None


class Siblings:
    """This worker's view of the others: relays beats to them, gathers their metrics."""

    def __init__(self, role: WorkerRole) -> None:
        self._role = role
        self._channels = {
            index: grpc.aio.insecure_channel(
                f"unix:{role.socket_path(index)}", options=_CHANNEL_OPTIONS
            )
            for index in role.siblings
        }
        self._in_flight: dict[int, set[asyncio.Task[None]]] = {i: set() for i in role.siblings}
        self._unreachable: set[int] = set()

    @property
    def count(self) -> int:
        """Workers of the gateway, this one included."""
        return self._role.count

    def relay_heartbeat(self, payload: bytes) -> None:
        """Sends a checked beat to every sibling, without waiting for any."""
        for index, tasks in self._in_flight.items():
            if len(tasks) >= MAX_RELAYS_IN_FLIGHT:
                continue
            task = asyncio.create_task(self._relay(index, payload))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    async def _relay(self, index: int, payload: bytes) -> None:
        call = self._channels[index].unary_unary(HEARTBEAT_METHOD, None, None)
        try:
            await call(payload, timeout=RELAY_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            if index not in self._unreachable:
                self._unreachable.add(index)
                log.info("worker %d takes no heartbeats for now: %s", index, error.code().name)
            return
        if index in self._unreachable:
            self._unreachable.discard(index)
            log.info("worker %d takes heartbeats again", index)

    async def scrape_all(self) -> list[bytes]:
        """Every sibling's exposition that arrived within SCRAPE_TIMEOUT_S (a sibling being
        restarted is left out)."""
        return await self._gather(METRICS_METHOD)

    async def http_counters_all(self) -> list[bytes]:
        """Every sibling's HTTP counters (an exposition of those alone), as ``scrape_all``."""
        return await self._gather(HTTP_COUNTERS_METHOD)

    async def _gather(self, method: str) -> list[bytes]:
        results = await asyncio.gather(*(self._scrape(index, method) for index in self._channels))
        return [result for result in results if result is not None]

    async def _scrape(self, index: int, method: str) -> bytes | None:
        call = self._channels[index].unary_unary(method, None, None)
        try:
            result: bytes = await call(b"", timeout=SCRAPE_TIMEOUT_S)
        except grpc.aio.AioRpcError as error:
            log.info("worker %d left out of a metrics scrape: %s", index, error.code().name)
            return None
        return result

    async def close(self) -> None:
        tasks = [task for group in self._in_flight.values() for task in group]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in self._channels.values():
            await channel.close(None)
