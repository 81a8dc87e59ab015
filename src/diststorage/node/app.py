"""Composition root of the storage node: store + gRPC server + heartbeats + scrubber, one
shutdown path."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

import grpc
import uvloop

from diststorage.core.clock import Clock, SystemClock
from diststorage.core.memory import tune_allocator
from diststorage.core.settings import NodeSettings, split_host_port
from diststorage.core.worker import run_worker
from diststorage.node.chunkstore import ChunkStore
from diststorage.node.heartbeat import HeartbeatConfig, run_heartbeats
from diststorage.node.reports import CorruptReports
from diststorage.node.scrubber import Scrubber, ScrubConfig
from diststorage.node.servicer import ChunkServicer, node_status, scrub_status
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 2.0
_WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", ""})

SERVER_OPTIONS: list[tuple[str, int]] = [
    # SO_REUSEPORT (grpc's default on Linux) lets a second node bind the same port and silently
    # take half the calls; a clash must fail loudly instead.
    ("grpc.so_reuseport", 0),
    # A hung (SIGSTOPped) gateway mid-PutChunk would hold its reservation and temp file for as
    # long as it stays hung. Keepalive pings break its connection within ~40 s, which aborts
    # the write. An unanswered ping only fails after ping_timeout (default 60 s), hence that too.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.http2.ping_timeout_ms", 10_000),
    ("grpc.http2.max_pings_without_data", 0),
]


def grpc_options(settings: NodeSettings) -> list[tuple[str, int]]:
    # Blocks of up to 64 MiB travel in one message; grpc's default 4 MiB limit would refuse them.
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]


@dataclass
class RunningNode:
    """A started node. ``stop`` is its one shutdown path."""

    settings: NodeSettings
    store: ChunkStore
    server: grpc.aio.Server
    port: int
    address: str
    """The address gateways are told to dial (the advertised one, with the real bound port)."""
    heartbeats: asyncio.Task[None]
    reports: CorruptReports
    scrubber: Scrubber | None
    """None when disabled (scrub_bytes_per_s = 0)."""
    scrubbing: asyncio.Task[None] | None

    async def stop(self, grace_s: float = SHUTDOWN_GRACE_S) -> None:
        log.info("node stopping: refusing new calls, %.1f s grace for calls in flight", grace_s)
        await self.server.stop(grace_s)
        await _cancel(self.heartbeats)
        # Before the store closes: the scrubber reads through the store's I/O threads.
        if self.scrubbing is not None:
            await _cancel(self.scrubbing)
        await self.store.close()
        log.info("node %s stopped", self.store.node_id)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        log.exception("task %s had failed", task.get_name())


async def start_node(settings: NodeSettings) -> RunningNode:
    """Opens the store, binds and starts the server, starts heartbeats and the scrubber;
    returns at once."""
    store = await ChunkStore.open(settings.data_dir, capacity_bytes=settings.capacity_bytes)
    clock = SystemClock()
    reports = CorruptReports()
    scrubber = _scrubber(settings, store, reports, clock)

    def scrub() -> pb.ScrubStatus:
        return scrub_status(scrubber.progress() if scrubber is not None else None)

    try:
        server = grpc.aio.server(options=[*grpc_options(settings), *SERVER_OPTIONS])
        port = server.add_insecure_port(settings.listen)
        address = _advertised_address(settings, port)
        pb_grpc.add_ChunkServiceServicer_to_server(ChunkServicer(store, address, scrub), server)
        await server.start()
    except BaseException:
        await store.close()
        raise

    async def status() -> pb.NodeStatus:
        return node_status(await store.stat(), address, scrub())

    config = HeartbeatConfig(
        gateways=settings.gateways,
        interval_s=settings.heartbeat_interval_s,
        timeout_s=settings.heartbeat_timeout_s,
        channel_options=grpc_options(settings),
        gateway_names=settings.gateway_dns,
        lookup_interval_s=settings.gateway_lookup_interval_s,
    )
    heartbeats = asyncio.create_task(run_heartbeats(config, status, reports), name="heartbeats")
    scrubbing = None
    if scrubber is not None:
        scrubbing = asyncio.create_task(run_worker(scrubber, clock), name="scrubber")
    log.info(
        "node %s serving on %s (advertised as %s), data in %s, gateways %s",
        store.node_id,
        settings.listen,
        address,
        settings.data_dir,
        ", ".join([*settings.gateways, *(f"every address of {n}" for n in settings.gateway_dns)])
        or "none",
    )
    return RunningNode(
        settings, store, server, port, address, heartbeats, reports, scrubber, scrubbing
    )


def _scrubber(
    settings: NodeSettings, store: ChunkStore, reports: CorruptReports, clock: Clock
) -> Scrubber | None:
    if settings.scrub_bytes_per_s == 0:
        log.warning("scrubber disabled: stored chunks are verified only when they are read")
        return None
    config = ScrubConfig(settings.scrub_bytes_per_s, settings.scrub_interval_s)
    return Scrubber(store, reports, config, clock)


async def serve_node(settings: NodeSettings) -> None:
    """Runs a node until SIGTERM or SIGINT, then shuts it down gracefully."""
    node = await start_node(settings)
    try:
        await _wait_for_stop_signal()
    finally:
        await node.stop()


def run_node(settings: NodeSettings) -> None:
    """Blocking entry point for the CLI: sets up logging (unless done already), runs ``serve_node``
    on uvloop until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s node %(levelname)s %(name)s: %(message)s"
    )
    tune_allocator()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve_node(settings))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    # grpc.aio drives its completion queue from its own thread and only needs call_soon_threadsafe
    # from the loop, which uvloop provides; the node test suite runs a node on uvloop to keep
    # that true across upgrades.
    return uvloop.new_event_loop


async def _wait_for_stop_signal() -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            with contextlib.suppress(RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("received %s", sig.name)
    stop.set()


def _advertised_address(settings: NodeSettings, bound_port: int) -> str:
    if settings.advertise:
        return settings.advertise
    host, _ = split_host_port(settings.listen)
    if host in _WILDCARD_HOSTS:
        log.warning("listening on %s without --advertise: gateways cannot dial it", settings.listen)
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{bound_port}"
