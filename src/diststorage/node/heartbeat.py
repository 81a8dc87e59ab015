"""Tells every gateway, every interval, that this node is alive and how full it is.

One independent worker per gateway (``GatewayBeats``, one beat per unit of work), each under
its own supervisor: a gateway that is down or hung costs its own worker one deadline per beat
and never delays the beats to the others. ``Heartbeats`` is the worker that owns them. Every
beat also carries the corrupt chunks the scrubber found and no gateway has acknowledged yet. A
gateway acknowledges a chunk once it has dealt with the report (read the chunk back, and
recorded it damaged for repair, or found it whole), so the first acknowledgement, from any
gateway, ends it.

Gateways are given by address, or by a DNS name whose every address is a gateway (a headless
Kubernetes Service in front of a Deployment): the name is looked up again every little while,
and a worker starts for each address that appears and stops for each one that goes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from diststorage.core.clock import Clock
from diststorage.core.cluster_tls import PLAINTEXT_LINKS, ClusterLinks
from diststorage.core.settings import split_host_port
from diststorage.core.worker import Figures, Step, Workers, WorkerState
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

StatusSource = Callable[[], Awaitable[pb.NodeStatus]]
# (host, port) -> the IP addresses the host name has now.
Resolver = Callable[[str, int], Awaitable[list[str]]]


class CorruptChunkReports(Protocol):
    """What heartbeats need of the scrubber's reports (see reports.CorruptReports)."""

    def pending(self) -> list[str]:
        """The chunk ids to put in the next beat."""

    def acknowledged(self, chunk_ids: Iterable[str]) -> None:
        """A gateway recorded these; stop sending them."""


class GatewayLink(Protocol):
    """A connection to one gateway's Inventory service."""

    async def heartbeat(
        self, request: pb.HeartbeatRequest, timeout_s: float
    ) -> pb.HeartbeatResponse:
        """One beat; raises grpc.aio.AioRpcError when the gateway fails or misses the deadline."""

    async def close(self) -> None: ...


# Address -> a link to the gateway there (made when its worker starts).
Dial = Callable[[str], GatewayLink]


# While a gateway keeps failing, repeat the warning at most this often.
FAILURE_LOG_INTERVAL_S = 30.0
# Longer than glibc's 5 s wait before it asks the next name server.
LOOKUP_TIMEOUT_S = 12.0
# With no names to look up, the owner of the per-gateway workers has nothing to do.
NOTHING_TO_LOOK_UP_S = 3600.0


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    gateways: tuple[str, ...]
    interval_s: float
    timeout_s: float
    channel_options: Sequence[tuple[str, int]] = ()
    # HOST:PORT names whose every address is a gateway, looked up every ``lookup_interval_s``.
    gateway_names: tuple[str, ...] = ()
    lookup_interval_s: float = 10.0
    # Mutual TLS under the cluster CA, or plaintext (--insecure-cluster, in-process tests).
    links: ClusterLinks = PLAINTEXT_LINKS


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses as the system resolves them (DNS, /etc/hosts), in one family."""
    found = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return one_family(str(info[4][0]) for info in found)


def one_family(addresses: Iterable[str]) -> list[str]:
    """The IPv4 addresses when there are any, else the IPv6 ones: on a dual-stack network every
    gateway pod has one of each, and beating to both would reach each gateway twice (and fail
    on the address family it does not listen on)."""
    unique = set(addresses)
    ipv4 = sorted(a for a in unique if ":" not in a)
    return ipv4 or sorted(unique)


class _GatewayHealth:
    """Turns a stream of beat outcomes into a few log lines: first failure, reminders, recovery."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.failures = 0
        self.gateway_id = ""
        self._last_warning_at = float("-inf")

    def succeeded(self, gateway_id: str) -> None:
        if self.failures:
            log.info(
                "gateway %s answers heartbeats again after %d failures", self.address, self.failures
            )
        if gateway_id != self.gateway_id:
            log.info("gateway %s is %s", self.address, gateway_id or "(no id)")
        self.failures = 0
        self.gateway_id = gateway_id

    def failed(self, reason: str, now: float) -> None:
        self.failures += 1
        if self.failures == 1 or now - self._last_warning_at >= FAILURE_LOG_INTERVAL_S:
            self._last_warning_at = now
            log.warning(
                "heartbeat to gateway %s failed (%d in a row): %s",
                self.address,
                self.failures,
                reason,
            )


def _dial_address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def reconnect_options(interval_s: float) -> list[tuple[str, int]]:
    """grpc backs off reconnecting up to 120 s by default: after a long gateway outage the node
    would stay silent (so "dead") for minutes once the gateway is back. Retry about once a beat."""
    backoff_ms = min(max(int(interval_s * 1000), 100), 5000)
    return [
        ("grpc.initial_reconnect_backoff_ms", backoff_ms),
        ("grpc.max_reconnect_backoff_ms", backoff_ms),
    ]


class _GrpcLink:
    def __init__(
        self, address: str, options: Sequence[tuple[str, int]], links: ClusterLinks
    ) -> None:
        self._channel = links.channel(address, options)
        self._stub = pb_grpc.InventoryStub(self._channel)

    async def heartbeat(
        self, request: pb.HeartbeatRequest, timeout_s: float
    ) -> pb.HeartbeatResponse:
        return await self._stub.Heartbeat(request, timeout=timeout_s)

    async def close(self) -> None:
        await self._channel.close(None)


def grpc_dial(config: HeartbeatConfig) -> Dial:
    options = [*config.channel_options, *reconnect_options(config.interval_s)]
    return lambda address: _GrpcLink(address, options, config.links)


class GatewayBeats:
    """The worker that beats to one gateway: one beat per unit, every ``interval_s``; when a
    beat ran late (slow gateway) the missed beats are skipped rather than sent in a burst.
    Never raises: every failure is the gateway's, counted and logged by ``_GatewayHealth``."""

    def __init__(
        self,
        address: str,
        config: HeartbeatConfig,
        source: StatusSource,
        reports: CorruptChunkReports,
        dial: Dial,
        clock: Clock,
    ) -> None:
        self.name = f"heartbeat {address}"
        self.health = _GatewayHealth(address)
        self._config = config
        self._source = source
        self._reports = reports
        self._dial = dial
        self._clock = clock
        self._link: GatewayLink | None = None
        self._next_beat_at: float | None = None
        self.reached = False
        """Whether the last beat was answered."""
        self.last_beat_at = 0.0
        """Wall time of the last beat answered; 0 before the first."""

    def status(self) -> Figures:
        return {"failures": self.health.failures, "last_beat_at": self.last_beat_at}

    async def work(self) -> Step:
        if self._link is None:
            self._link = self._dial(self.health.address)
        now = self._clock.monotonic()
        next_beat_at = now if self._next_beat_at is None else self._next_beat_at
        await self._beat(self._link)
        now = self._clock.monotonic()
        self._next_beat_at = max(next_beat_at + self._config.interval_s, now)
        return Step(WorkerState.IDLE, wait_s=self._next_beat_at - now)

    async def _beat(self, link: GatewayLink) -> None:
        health = self.health
        try:
            request = pb.HeartbeatRequest(
                status=await self._source(), corrupt_chunk_ids=self._reports.pending()
            )
            response = await link.heartbeat(request, self._config.timeout_s)
        except grpc.aio.AioRpcError as exc:
            self.reached = False
            health.failed(f"{exc.code().name}: {exc.details()}", self._clock.monotonic())
        except Exception as exc:
            # The loop must outlive any surprise; the traceback goes out with the
            # (rate-limited) line.
            self.reached = False
            health.failed(repr(exc), self._clock.monotonic())
            if health.failures == 1:
                log.exception("unexpected heartbeat failure")
        else:
            self.reached = True
            self.last_beat_at = self._clock.time()
            health.succeeded(response.gateway_id)
            self._reports.acknowledged(response.acknowledged_corrupt_chunk_ids)

    async def close(self) -> None:
        if self._link is not None:
            await self._link.close()


class Heartbeats:
    """The worker that keeps one ``GatewayBeats`` worker per gateway: one per address given at
    once, and one per address each name resolves to, looked up again each unit of work. A failed
    lookup keeps the workers there are (a DNS hiccup must not silence the node). Never raises.
    ``close`` stops every per-gateway worker and waits until each closed its connection."""

    name = "heartbeats"

    def __init__(
        self,
        config: HeartbeatConfig,
        source: StatusSource,
        reports: CorruptChunkReports,
        clock: Clock,
        resolve: Resolver = system_resolver,
        dial: Dial | None = None,
    ) -> None:
        self._config = config
        self._source = source
        self._reports = reports
        self._clock = clock
        self._resolve = resolve
        self._dial = dial if dial is not None else grpc_dial(config)
        # (the name it came from or None for an address given, address) -> its worker.
        self._beating: dict[tuple[str | None, str], GatewayBeats] = {}
        self._workers = Workers(clock)
        self._failing_names: set[str] = set()
        self._started = False

    def status(self) -> Figures:
        beats = list(self._beating.values())
        return {
            "gateways": len(beats),
            "gateways_reached": sum(b.reached for b in beats),
            "last_beat_at": max((b.last_beat_at for b in beats), default=0.0),
        }

    async def work(self) -> Step:
        if not self._started:
            self._started = True
            await self._workers.open()
            if not self._config.gateways and not self._config.gateway_names:
                log.warning("no gateways configured; this node sends no heartbeats")
            for address in self._config.gateways:
                self._start(None, address)
        # Side by side: a name server that takes its whole timeout for one name must not hold
        # up the others' lookups.
        await asyncio.gather(*(self._follow(name) for name in self._config.gateway_names))
        if not self._config.gateway_names:
            return Step(WorkerState.IDLE, wait_s=NOTHING_TO_LOOK_UP_S)
        return Step(WorkerState.IDLE, wait_s=self._config.lookup_interval_s)

    async def _follow(self, name: str) -> None:
        host, port = split_host_port(name)
        have = {address for source, address in self._beating if source == name}
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                found = {_dial_address(ip, port) for ip in await self._resolve(host, port)}
        except Exception as exc:
            # A malformed name (UnicodeError from the IDNA codec) too: it costs this
            # name's beats, never the other gateways'.
            if name not in self._failing_names:
                log.warning("cannot look up gateways at %s: %r; keeping %d", name, exc, len(have))
            self._failing_names.add(name)
            return
        if name in self._failing_names:
            log.info("gateways at %s resolve again", name)
            self._failing_names.discard(name)
        for address in sorted(found - have):
            log.info("gateway at %s: %s appeared", name, address)
            self._start(name, address)
        for address in sorted(have - found):
            log.info("gateway at %s: %s is gone", name, address)
            await self._workers.stop(self._beating.pop((name, address)))

    def _start(self, source: str | None, address: str) -> None:
        beats = GatewayBeats(
            address, self._config, self._source, self._reports, self._dial, self._clock
        )
        self._workers.start(beats)
        self._beating[(source, address)] = beats

    async def close(self) -> None:
        self._beating = {}
        await self._workers.aclose()
