"""Composition root of the storage node: store + gRPC server + heartbeats + scrubber, one
shutdown path.

``build_node(settings)`` makes a ``Node``; ``start`` builds its parts in order, each entered in
one exit stack as it is built, and ``stop`` unwinds that stack: the server stops listening and
lets calls in flight finish within the grace, then the workers (heartbeats, scrubber) end, then
the store closes.
"""

from __future__ import annotations

import contextlib
import logging

import grpc

from diststorage.core.clock import SYSTEM_CLOCK, Clock
from diststorage.core.cluster_tls import NODE_ROLE, cluster_links
from diststorage.core.daemon import build_or_unwind, run_daemon, serve
from diststorage.core.datalink import LinkSecret
from diststorage.core.grpc_undecodable import RefuseUndecodable
from diststorage.core.settings import NodeSettings, split_host_port
from diststorage.core.worker import Workers
from diststorage.node.chunkstore import ChunkStore
from diststorage.node.datalink_server import DataLinkServer
from diststorage.node.heartbeat import HeartbeatConfig, Heartbeats
from diststorage.node.reports import CorruptReports
from diststorage.node.scrubber import Scrubber, ScrubConfig, ScrubProgress
from diststorage.node.servicer import ChunkServicer, add_chunk_service, node_status, scrub_status
from diststorage.proto import storage_pb2 as pb

log = logging.getLogger(__name__)

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
    # Blocks of up to 64 MiB travel in one message; grpc's default 4 MiB limit would refuse them,
    # and anything much larger is a message no block needs (settings.MAX_BLOCK_MESSAGE_BYTES).
    return [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]


def call_limits(settings: NodeSettings) -> list[tuple[str, int]]:
    """How many streams one connection may open at once: a caller that opens more waits for
    one to end instead of making the node hold them all. Calls over ``max_concurrent_rpcs``
    across connections are refused with RESOURCE_EXHAUSTED by the server itself."""
    return [("grpc.max_concurrent_streams", settings.max_concurrent_streams)]


class Node:
    """A storage node. After ``start``: ``store``, ``server``, ``port``, ``address`` (what
    gateways are told to dial: the advertised one, with the real bound port), ``scrubber``
    (None when disabled, scrub_bytes_per_s = 0) and ``workers``."""

    def __init__(self, settings: NodeSettings, clock: Clock = SYSTEM_CLOCK) -> None:
        self.settings = settings
        self._clock = clock
        self.reports = CorruptReports()
        self.workers = Workers(clock)
        self.scrubber: Scrubber | None = None
        self._parts = contextlib.AsyncExitStack()
        self._grace_s = settings.shutdown_grace_s

    async def start(self) -> None:
        """Opens the store, binds and starts the server, starts heartbeats and the scrubber;
        returns at once. On failure, closes what it opened and raises."""
        await build_or_unwind(self._parts, self._build)
        settings = self.settings
        log.info(
            "node %s serving on %s (advertised as %s), data link on port %d, data in %s, "
            "gateways %s",
            self.store.node_id,
            settings.listen,
            self.address,
            self.data_port,
            settings.data_dir,
            ", ".join(
                [*settings.gateways, *(f"every address of {n}" for n in settings.gateway_dns)]
            )
            or "none",
        )

    async def _build(self, parts: contextlib.AsyncExitStack) -> None:
        settings = self.settings
        self.store = await parts.enter_async_context(
            await ChunkStore.open(settings.data_dir, capacity_bytes=settings.capacity_bytes)
        )
        # Closed after the server stopped, before the store: the scrubber reads through the
        # store's I/O threads.
        await self.workers.open()
        parts.push_async_callback(self.workers.aclose)
        self.scrubber = _scrubber(settings, self.store, self.reports, self._clock)
        # Issued once the store gave the node its id: the id is in the node's certificate.
        self.links = cluster_links(
            settings.cluster_dir, settings.insecure_cluster, NODE_ROLE, self.store.node_id
        )
        self.server = grpc.aio.server(
            options=[*grpc_options(settings), *SERVER_OPTIONS, *call_limits(settings)],
            maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
            interceptors=[RefuseUndecodable()],
        )
        self.port = self.links.add_port(self.server, settings.listen)
        self.address = _advertised_address(settings, self.port)
        self.data_link = DataLinkServer(
            self.store,
            self.links.secure,
            max_connections=settings.max_concurrent_rpcs,
            max_frame_bytes=settings.max_message_bytes,
        )
        data_host, data_port = split_host_port(settings.data_listen or f"{settings.listen}")
        self.data_port = await self.data_link.start(
            data_host, data_port if settings.data_listen else 0
        )
        # Stopped after the gRPC server (pushed first, unwound last).
        parts.push_async_callback(self.data_link.close)
        servicer = ChunkServicer(
            self.store, self.address, self._scrub_progress, self._open_data_link
        )
        add_chunk_service(servicer, self.server)
        await self.server.start()
        parts.push_async_callback(self._stop_server)
        self.workers.start(
            Heartbeats(self._heartbeat_config(), self._status, self.reports, self._clock)
        )
        if self.scrubber is not None:
            self.workers.start(self.scrubber)

    def _heartbeat_config(self) -> HeartbeatConfig:
        settings = self.settings
        return HeartbeatConfig(
            gateways=settings.gateways,
            interval_s=settings.heartbeat_interval_s,
            timeout_s=settings.heartbeat_timeout_s,
            channel_options=grpc_options(settings),
            gateway_names=settings.gateway_dns,
            lookup_interval_s=settings.gateway_lookup_interval_s,
            links=self.links,
        )

    def _open_data_link(self) -> tuple[int, LinkSecret]:
        return self.data_port, self.data_link.open_link()

    def _scrub_progress(self) -> ScrubProgress | None:
        return self.scrubber.progress() if self.scrubber is not None else None

    async def _status(self) -> pb.NodeStatus:
        """What the heartbeats send: a gRPC client, so the wire message is built here."""
        return node_status(
            await self.store.stat(), self.address, scrub_status(self._scrub_progress())
        )

    async def _stop_server(self) -> None:
        log.info(
            "node stopping: refusing new calls, %.1f s grace for calls in flight", self._grace_s
        )
        await self.server.stop(self._grace_s)

    async def stop(self, grace_s: float | None = None) -> None:
        """The one shutdown path; ``grace_s`` overrides the setting (tests stop at once)."""
        if grace_s is not None:
            self._grace_s = grace_s
        await self._parts.aclose()
        log.info("node %s stopped", self.store.node_id)


def build_node(settings: NodeSettings) -> Node:
    return Node(settings)


async def start_node(settings: NodeSettings) -> Node:
    """A started node (``build_node`` then ``start``)."""
    node = build_node(settings)
    await node.start()
    return node


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
    await serve(build_node(settings))


def run_node(settings: NodeSettings) -> None:
    """Blocking entry point for the CLI: logging, allocator, uvloop, then ``serve_node``."""
    run_daemon("node", build_node(settings), settings.log_format)


def _advertised_address(settings: NodeSettings, bound_port: int) -> str:
    if settings.advertise:
        return settings.advertise
    host, _ = split_host_port(settings.listen)
    if host in _WILDCARD_HOSTS:
        log.warning("listening on %s without --advertise: gateways cannot dial it", settings.listen)
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{bound_port}"
