"""The heartbeat workers in virtual time: a fake link to each gateway, a fake resolver, and a
FakeClock, so that intervals, skipped beats and lookups are asserted without waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import pytest

from diststorage.core.worker import WorkerState, run_worker
from diststorage.node.heartbeat import GatewayBeats, HeartbeatConfig, Heartbeats
from diststorage.node.reports import CorruptReports
from diststorage.proto import storage_pb2 as pb
from diststorage.testing import FakeClock
from diststorage.testing.clock import EPOCH_S


class Enough(Exception):
    """Ends a worker's run from inside its (virtual) sleep."""


class FakeLink:
    """A gateway that answers (or fails) each beat, noting the virtual time it came at."""

    def __init__(self, clock: FakeClock, answer: Callable[[int], float | None]) -> None:
        self._clock = clock
        self._answer = answer
        self.beats_at: list[float] = []
        self.closed = False

    async def heartbeat(
        self, request: pb.HeartbeatRequest, timeout_s: float
    ) -> pb.HeartbeatResponse:
        self.beats_at.append(self._clock.now)
        took_s = self._answer(len(self.beats_at))
        if took_s is None:
            raise grpc.aio.AioRpcError(
                grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), "down", None
            )
        self._clock.now += took_s
        return pb.HeartbeatResponse(gateway_id="gw")

    async def close(self) -> None:
        self.closed = True


async def node_status() -> pb.NodeStatus:
    return pb.NodeStatus(node_id="n")


CONFIG = HeartbeatConfig(("gw:7002",), interval_s=1.0, timeout_s=2.0)


def run_until(clock: FakeClock, done: Callable[[], bool]) -> None:
    def on_sleep(seconds: float) -> None:
        if done():
            raise Enough

    clock.on_sleep = on_sleep


async def test_beats_keep_their_interval_and_skip_what_a_slow_gateway_missed() -> None:
    clock = FakeClock()
    # The third beat takes 2.5 s: the beats due at 3 and 4 are skipped, not sent in a burst.
    link = FakeLink(clock, lambda beat: 2.5 if beat == 3 else 0.0)
    beats = GatewayBeats("gw:7002", CONFIG, node_status, CorruptReports(), lambda _: link, clock)
    run_until(clock, lambda: len(link.beats_at) >= 5)

    with pytest.raises(Enough):
        await run_worker(beats, clock)

    assert link.beats_at == [0.0, 1.0, 2.0, 4.5, 5.5]
    assert beats.status() == {"failures": 0, "last_beat_at": EPOCH_S + 5.5}
    assert link.closed


async def test_a_failing_gateway_gets_a_beat_every_interval_all_the_same() -> None:
    clock = FakeClock()
    link = FakeLink(clock, lambda beat: None)
    beats = GatewayBeats("gw:7002", CONFIG, node_status, CorruptReports(), lambda _: link, clock)
    run_until(clock, lambda: len(link.beats_at) >= 4)

    with pytest.raises(Enough):
        await run_worker(beats, clock)

    assert link.beats_at == [0.0, 1.0, 2.0, 3.0], "no backoff: the gateway may be back any time"
    assert beats.status() == {"failures": 4, "last_beat_at": 0.0}
    assert not beats.reached


async def settle() -> None:
    # The per-gateway workers run as tasks; with a FakeClock each beat yields once.
    for _ in range(20):
        await asyncio.sleep(0)


async def test_the_owner_follows_the_addresses_a_name_resolves_to() -> None:
    clock = FakeClock()
    links: dict[str, FakeLink] = {}
    answer: list[str] | OSError = ["10.0.0.1"]

    def dial(address: str) -> FakeLink:
        links[address] = FakeLink(clock, lambda beat: 0.0)
        return links[address]

    async def resolve(host: str, port: int) -> list[str]:
        assert (host, port) == ("gateways.test", 7002)
        if isinstance(answer, OSError):
            raise answer
        return list(answer)

    config = HeartbeatConfig(
        ("10.9.9.9:7002",),
        interval_s=1.0,
        timeout_s=2.0,
        gateway_names=("gateways.test:7002",),
        lookup_interval_s=10.0,
    )
    heartbeats = Heartbeats(config, node_status, CorruptReports(), clock, resolve, dial)
    try:
        step = await heartbeats.work()
        assert (step.state, step.wait_s) == (WorkerState.IDLE, 10.0)
        await settle()
        assert sorted(links) == ["10.0.0.1:7002", "10.9.9.9:7002"]
        assert heartbeats.status()["gateways_reached"] == 2

        answer = ["10.0.0.1", "10.0.0.2"]
        await heartbeats.work()
        await settle()
        assert heartbeats.status()["gateways"] == 3 and links["10.0.0.2:7002"].beats_at

        answer = OSError("name server down")
        await heartbeats.work()
        assert heartbeats.status()["gateways"] == 3, "a failed lookup keeps the gateways"

        answer = ["10.0.0.2"]
        await heartbeats.work()
        assert links["10.0.0.1:7002"].closed, "an address that left gets no more beats"
        assert heartbeats.status()["gateways"] == 2
    finally:
        await heartbeats.close()
    assert all(link.closed for link in links.values())
