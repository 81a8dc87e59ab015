"""Tells every gateway, every interval, that this node is alive and how full it is.

One independent loop per gateway: a gateway that is down or hung costs its own loop one deadline
per beat and never delays the beats to the others. Every beat also carries the corrupt chunks
the scrubber found and no gateway has acknowledged yet. A gateway acknowledges a chunk once it
has persisted the report for repair, so the first acknowledgement, from any gateway, ends it.

Gateways are given by address, or by a DNS name whose every address is a gateway (a headless
Kubernetes Service in front of a Deployment): the name is looked up again every little while,
and a loop starts for each address that appears and stops for each one that goes.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc

from diststorage.core.settings import split_host_port
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


# While a gateway keeps failing, repeat the warning at most this often.
FAILURE_LOG_INTERVAL_S = 30.0
# Longer than glibc's 5 s wait before it asks the next name server.
LOOKUP_TIMEOUT_S = 12.0


@dataclass(frozen=True, slots=True)
class HeartbeatConfig:
    gateways: tuple[str, ...]
    interval_s: float
    timeout_s: float
    channel_options: Sequence[tuple[str, int]] = ()
    # HOST:PORT names whose every address is a gateway, looked up every ``lookup_interval_s``.
    gateway_names: tuple[str, ...] = ()
    lookup_interval_s: float = 10.0


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


async def run_heartbeats(
    config: HeartbeatConfig,
    status: StatusSource,
    reports: CorruptChunkReports,
    resolve: Resolver = system_resolver,
) -> None:
    """Runs until cancelled; never stops because a gateway fails or a name does not resolve."""
    if not config.gateways and not config.gateway_names:
        log.warning("no gateways configured; this node sends no heartbeats")
        return
    async with asyncio.TaskGroup() as group:
        for address in config.gateways:
            group.create_task(
                _beat_forever(address, config, status, reports), name=f"heartbeat {address}"
            )
        for name in config.gateway_names:
            group.create_task(
                _follow_name(name, config, status, reports, resolve), name=f"gateways at {name}"
            )


def _dial_address(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


async def _follow_name(
    name: str,
    config: HeartbeatConfig,
    status: StatusSource,
    reports: CorruptChunkReports,
    resolve: Resolver,
) -> None:
    """Keeps one beat loop per address ``name`` resolves to; a failed lookup keeps the loops
    there are (a DNS hiccup must not silence the node)."""
    host, port = split_host_port(name)
    loops: dict[str, asyncio.Task[None]] = {}
    failing = False
    try:
        while True:
            for address in [a for a, task in loops.items() if task.done()]:
                # A loop ends only by failing; it is started again below.
                ended = loops.pop(address)
                if not ended.cancelled():
                    log.warning("heartbeats to %s stopped: %r", address, ended.exception())
            try:
                async with asyncio.timeout(LOOKUP_TIMEOUT_S):
                    found = {_dial_address(ip, port) for ip in await resolve(host, port)}
            except Exception as exc:
                # A malformed name (UnicodeError from the IDNA codec) too: it costs this
                # name's beats, never the other gateways'.
                if not failing:
                    log.warning(
                        "cannot look up gateways at %s: %r; keeping %d", name, exc, len(loops)
                    )
                failing = True
            else:
                if failing:
                    log.info("gateways at %s resolve again", name)
                failing = False
                for address in sorted(found - loops.keys()):
                    log.info("gateway at %s: %s appeared", name, address)
                    loops[address] = asyncio.create_task(
                        _beat_forever(address, config, status, reports), name=f"heartbeat {address}"
                    )
                for address in sorted(loops.keys() - found):
                    log.info("gateway at %s: %s is gone", name, address)
                    await _stop(loops.pop(address))
            await asyncio.sleep(config.lookup_interval_s)
    finally:
        await _stop(*loops.values())


async def _stop(*tasks: asyncio.Task[None]) -> None:
    # All cancelled before any wait, so a second cancellation of the caller here leaves none
    # running; and waited for without awaiting them, so that only their own cancellation is
    # absorbed here, never one aimed at the caller.
    for task in tasks:
        task.cancel()
    if tasks:
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled():
            task.exception()


def reconnect_options(interval_s: float) -> list[tuple[str, int]]:
    """grpc backs off reconnecting up to 120 s by default: after a long gateway outage the node
    would stay silent (so "dead") for minutes once the gateway is back. Retry about once a beat."""
    backoff_ms = min(max(int(interval_s * 1000), 100), 5000)
    return [
        ("grpc.initial_reconnect_backoff_ms", backoff_ms),
        ("grpc.max_reconnect_backoff_ms", backoff_ms),
    ]


async def _beat_forever(
    address: str, config: HeartbeatConfig, status: StatusSource, reports: CorruptChunkReports
) -> None:
    loop = asyncio.get_running_loop()
    health = _GatewayHealth(address)
    options = [*config.channel_options, *reconnect_options(config.interval_s)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        stub = pb_grpc.InventoryStub(channel)
        next_beat = loop.time()
        while True:
            await _beat(stub, health, config.timeout_s, status, reports, loop.time)
            next_beat += config.interval_s
            now = loop.time()
            # Fell behind (slow gateway): skip the missed beats rather than send a burst.
            next_beat = max(next_beat, now)
            await asyncio.sleep(next_beat - now)


async def _beat(
    stub: pb_grpc.InventoryAsyncStub,
    health: _GatewayHealth,
    timeout_s: float,
    status: StatusSource,
    reports: CorruptChunkReports,
    clock: Callable[[], float],
) -> None:
    try:
        request = pb.HeartbeatRequest(status=await status(), corrupt_chunk_ids=reports.pending())
        response = await stub.Heartbeat(request, timeout=timeout_s)
    except grpc.aio.AioRpcError as exc:
        health.failed(f"{exc.code().name}: {exc.details()}", clock())
    except Exception as exc:
        # The loop must outlive any surprise; the traceback goes out with the (rate-limited) line.
        health.failed(repr(exc), clock())
        if health.failures == 1:
            log.exception("unexpected heartbeat failure")
    else:
        health.succeeded(response.gateway_id)
        reports.acknowledged(response.acknowledged_corrupt_chunk_ids)
