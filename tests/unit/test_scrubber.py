"""The background scrubber on a real ChunkStore in tmp_path, in virtual time; its reports carried
by heartbeats to in-process fake gateways; and the node that wires both together.

Faults injected: a flipped byte inside a block, a chunk file cut short (trailer lost), chunks
deleted while a pass is under way, a worker unit that raises, a stop in the middle of a pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import crc32c
import grpc
import pytest

from diststorage.core.clock import SYSTEM_CLOCK
from diststorage.core.settings import NodeSettings
from diststorage.core.worker import Figures, Step, WorkerState, run_worker
from diststorage.node import ChunkStore
from diststorage.node.app import start_node
from diststorage.node.heartbeat import (
    HeartbeatConfig,
    Heartbeats,
    Resolver,
    one_family,
    system_resolver,
)
from diststorage.node.reports import CorruptReports
from diststorage.node.scrubber import SAVE_INTERVAL_S, Scrubber, ScrubConfig
from diststorage.node.scrubstate import ScrubState, load_scrub_state, save_scrub_state
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc
from diststorage.testing import FakeClock
from diststorage.testing.clock import EPOCH_S

RATE = 1000
"""Bytes per second in the virtual-time tests; the burst is one second's worth."""


class Stop(BaseException):
    """Ends a run_worker loop from inside a test hook (the supervisor only absorbs Exception)."""


def chunk_id(n: int) -> str:
    return f"{n:032x}"


def make_blocks(*sizes: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for size in sizes]


async def put(store: ChunkStore, chunk: str, blocks: list[bytes]) -> None:
    writer = await store.open_writer(chunk, sum(map(len, blocks)))
    async with writer:
        for block in blocks:
            await writer.write_block(block, crc32c.crc32c(block))
        await writer.commit()


def flip_byte(store: ChunkStore, chunk: str, offset: int) -> None:
    path = store.layout.chunk_path(chunk)
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 0x5A
    path.write_bytes(bytes(raw))


def cut_short(store: ChunkStore, chunk: str, nbytes: int) -> None:
    path = store.layout.chunk_path(chunk)
    path.write_bytes(path.read_bytes()[:-nbytes])


def scrubber_for(
    store: ChunkStore,
    clock: FakeClock,
    reports: CorruptReports | None = None,
    *,
    interval_s: float = 100.0,
    page_chunks: int = 3,
) -> Scrubber:
    config = ScrubConfig(RATE, interval_s, page_chunks=page_chunks)
    return Scrubber(store, reports or CorruptReports(), config, clock)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ChunkStore]:
    async with await ChunkStore.open(tmp_path / "data") as store:
        yield store


# -- One pass ----------------------------------------------------------------------------------


async def test_a_pass_reports_exactly_the_corrupt_chunks_and_leaves_them_alone(
    store: ChunkStore,
) -> None:
    for n in range(7):
        await put(store, chunk_id(n), make_blocks(400, 300, 200, seed=n))
    flip_byte(store, chunk_id(1), 400 + 10)  # inside the second block
    cut_short(store, chunk_id(3), 5)  # the trailer no longer adds up
    flip_byte(store, chunk_id(5), 900 - 1)  # the last data byte
    damaged = {n: store.layout.chunk_path(chunk_id(n)).read_bytes() for n in (1, 3, 5)}
    clock, reports = FakeClock(), CorruptReports()
    scrubber = scrubber_for(store, clock, reports)

    await scrubber.run_pass()

    assert reports.pending() == [chunk_id(1), chunk_id(3), chunk_id(5)]
    progress = scrubber.progress()
    assert progress.corrupt_found == 3
    assert progress.passes_completed == 1
    assert progress.last_pass_finished == clock.time()
    # Four healthy chunks whole, the blocks before the damaged one in chunks 1 and 5.
    assert progress.verified_bytes == 4 * 900 + 400 + 700
    # Reported, not repaired: the gateway rebuilds the data elsewhere and deletes these later.
    for n, raw in damaged.items():
        assert store.layout.chunk_path(chunk_id(n)).read_bytes() == raw

    await scrubber.run_pass()
    assert reports.pending() == [chunk_id(1), chunk_id(3), chunk_id(5)]
    assert scrubber.progress().corrupt_found == 3, "a chunk still pending is not counted twice"
    assert scrubber.progress().passes_completed == 2


@pytest.mark.parametrize("delete", [True, False])
async def test_chunks_deleted_during_a_pass_are_not_reported(
    store: ChunkStore, delete: bool
) -> None:
    # Blocks of one second's budget: the scrubber sleeps before every block but the first, which
    # is where the chunks go. Chunk 1 is open by then (its second block is damaged), chunk 2
    # (damaged in its first block) is not opened yet.
    for n in range(4):
        await put(store, chunk_id(n), make_blocks(RATE, RATE, seed=n))
    flip_byte(store, chunk_id(1), RATE + 1)
    flip_byte(store, chunk_id(2), 1)
    clock, reports = FakeClock(), CorruptReports()
    scrubber = scrubber_for(store, clock, reports)
    deleted: list[bool] = []

    def delete_when_chunk_1_is_half_read(_: float) -> None:
        if delete and not deleted and scrubber.progress().verified_bytes == 3 * RATE:
            for n in (1, 2):
                store.layout.chunk_path(chunk_id(n)).unlink()
            deleted.append(True)

    clock.on_sleep = delete_when_chunk_1_is_half_read
    await scrubber.run_pass()

    assert deleted == ([True] if delete else [])
    if delete:
        assert reports.pending() == []
        assert scrubber.progress().corrupt_found == 0
    else:
        assert reports.pending() == [chunk_id(1), chunk_id(2)]
    assert scrubber.progress().passes_completed == 1


async def test_reads_stay_within_the_rate_limit(store: ChunkStore) -> None:
    sizes = (500, 3 * RATE, 200, 0, 700)  # one block above the one-second burst, one empty
    for n in range(8):
        await put(store, chunk_id(n), make_blocks(*sizes, seed=n))
    total = 8 * sum(sizes)
    clock = FakeClock()
    scrubber = scrubber_for(store, clock)
    seen: list[tuple[float, int]] = []
    clock.on_sleep = lambda _: seen.append((clock.now, scrubber.progress().verified_bytes))

    await scrubber.run_pass()

    assert scrubber.progress().verified_bytes == total
    slack = 1e-6  # virtual time is a float: 29.1 s is 29.099999999999998 s
    for now, verified in seen:
        assert verified <= RATE + RATE * (now + slack), f"{verified} bytes read by t={now}"
    # Not slower than the limit either: only the burst comes for free.
    assert (total - RATE) / RATE - slack <= clock.now <= total / RATE


async def test_passes_are_separated_by_the_interval(store: ChunkStore) -> None:
    for n in range(3):
        await put(store, chunk_id(n), make_blocks(100, seed=n))
    clock = FakeClock()
    scrubber = scrubber_for(store, clock, interval_s=50.0)
    finished: list[float] = []

    def watch(seconds: float) -> None:
        progress = scrubber.progress()
        if progress.passes_completed > len(finished):
            finished.append(progress.last_pass_finished - EPOCH_S)
        if len(finished) == 3:
            raise Stop

    clock.on_sleep = watch
    with pytest.raises(Stop):
        await run_worker(scrubber, clock)

    assert [b - a for a, b in itertools.pairwise(finished)] == [50.0, 50.0]
    assert scrubber.progress().state is WorkerState.IDLE


# -- Progress across restarts ----------------------------------------------------------------


async def test_a_restarted_scrubber_resumes_its_pass(store: ChunkStore) -> None:
    for n in range(40):
        await put(store, chunk_id(n), make_blocks(RATE, seed=n))
    flip_byte(store, chunk_id(2), 7)
    clock = FakeClock()
    first = scrubber_for(store, clock)

    def crash_after_the_first_save(_: float) -> None:
        if clock.now > SAVE_INTERVAL_S + 1:
            raise Stop

    clock.on_sleep = crash_after_the_first_save
    with pytest.raises(Stop):
        await run_worker(first, clock)

    saved = load_scrub_state(store.layout.scrub_state_path)
    assert chunk_id(25) <= saved.cursor < chunk_id(35), saved
    clock.on_sleep = lambda _: None
    reports = CorruptReports()
    second = scrubber_for(store, clock, reports)
    await second.run_pass()
    done = int(saved.cursor, 16) + 1
    assert second.progress().verified_bytes == (40 - done) * RATE
    assert reports.pending() == [], "chunk 2 lies before the cursor: the next pass finds it"

    await second.run_pass()
    assert reports.pending() == [chunk_id(2)]
    assert load_scrub_state(store.layout.scrub_state_path) == ScrubState("", clock.time())


async def test_the_pause_between_passes_survives_a_restart(store: ChunkStore) -> None:
    clock = FakeClock()
    clock.now = 1000.0
    path = store.layout.scrub_state_path
    save_scrub_state(path, ScrubState("", clock.time() - 10.0))
    assert await scrubber_for(store, clock, interval_s=100.0).work() == Step(WorkerState.IDLE, 90.0)
    # A wall clock set back a year must not postpone scrubbing by a year.
    save_scrub_state(path, ScrubState("", clock.time() + 365 * 86400.0))
    assert await scrubber_for(store, clock, interval_s=100.0).work() == Step(
        WorkerState.IDLE, 100.0
    )
    path.write_text("{not json")
    assert (await scrubber_for(store, clock).work()).state is WorkerState.BUSY


# -- The supervisor ------------------------------------------------------------------------------


class FlakyWorker:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.units = 0
        self.closed = 0

    async def work(self) -> Step:
        self.units += 1
        if self.units <= self.failures:
            raise OSError("disk on fire")
        return Step(WorkerState.IDLE, 5.0)

    def status(self) -> Figures:
        return {"units": self.units}

    async def close(self) -> None:
        self.closed += 1


async def test_the_supervisor_backs_off_after_errors_and_closes_the_worker() -> None:
    worker, clock = FlakyWorker(failures=3), FakeClock()

    def stop_after_two_good_units(_: float) -> None:
        if worker.units == worker.failures + 2:
            raise Stop

    clock.on_sleep = stop_after_two_good_units
    with pytest.raises(Stop):
        await run_worker(worker, clock)
    assert clock.sleeps == [1.0, 2.0, 4.0, 5.0]
    assert worker.closed == 1


async def test_the_supervisor_holds_a_worker_back_while_it_may_not_run() -> None:
    """A gateway's leader-only workers: no unit of work while another gateway leads."""
    worker, clock = FlakyWorker(failures=0), FakeClock()
    leading = [False, False, True, False, True]

    def stop_when_asked_enough(_: float) -> None:
        if not leading:
            raise Stop

    def may_run() -> bool:
        return leading.pop(0) if leading else False

    clock.on_sleep = stop_when_asked_enough
    with pytest.raises(Stop):
        await run_worker(worker, clock, may_run)
    assert worker.units == 2, "one unit per turn as leader, none otherwise"
    # Standby polls, then the unit's own idle pause; the pause after the second unit is
    # where the test stops the loop.
    assert clock.sleeps == [1.0, 1.0, 5.0, 1.0]
    assert worker.closed == 1


# -- Reports and heartbeats ----------------------------------------------------------------------


def test_reports_are_bounded_and_never_repeated_once_acknowledged() -> None:
    reports = CorruptReports(max_pending=3, max_acknowledged=2, max_per_beat=2)
    assert [reports.found(chunk_id(n)) for n in (1, 2, 1, 3, 4)] == [True, True, False, True, False]
    assert reports.pending() == [chunk_id(1), chunk_id(2)]
    reports.acknowledged([chunk_id(1), chunk_id(9)])
    assert reports.pending() == [chunk_id(2), chunk_id(3)]
    assert not reports.found(chunk_id(1)), "acknowledged: never again"
    assert reports.found(chunk_id(4)), "there is room again"
    reports.acknowledged([chunk_id(2), chunk_id(3)])
    # Only two acknowledgements are remembered: the oldest, chunk 1, may be reported again.
    assert reports.found(chunk_id(1))
    assert not reports.found(chunk_id(3))


class FakeGateway(pb_grpc.InventoryServicer):
    """Records every beat; acknowledges the corrupt chunk ids once ``ack`` says so."""

    def __init__(self, ack: Callable[[], bool]) -> None:
        self.beats: list[pb.HeartbeatRequest] = []
        self._ack = ack

    async def Heartbeat(  # noqa: N802 - names fixed by the .proto
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HeartbeatResponse:
        self.beats.append(request)
        acknowledged = list(request.corrupt_chunk_ids) if self._ack() else []
        return pb.HeartbeatResponse(gateway_id="fake", acknowledged_corrupt_chunk_ids=acknowledged)

    def reported(self) -> list[list[str]]:
        return [list(beat.corrupt_chunk_ids) for beat in self.beats]


async def beat_status() -> pb.NodeStatus:
    """What the heartbeat tests' node says of itself."""
    return pb.NodeStatus(node_id=chunk_id(0))


async def beating_to(
    config: HeartbeatConfig, reports: CorruptReports, resolve: Resolver = system_resolver
) -> None:
    """Heartbeats under their supervisor, in real time, as a node runs them."""
    heartbeats = Heartbeats(config, beat_status, reports, SYSTEM_CLOCK, resolve)
    await run_worker(heartbeats, SYSTEM_CLOCK)


@contextlib.asynccontextmanager
async def serving(
    gateway: FakeGateway, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    server = grpc.aio.server()
    pb_grpc.add_InventoryServicer_to_server(gateway, server)
    port = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    try:
        yield f"{host}:{port}"
    finally:
        await server.stop(0)


async def wait_until(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        # Polls state the gateways fill in from their own server threads; the deadline bounds it.
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def test_reports_go_to_every_gateway_until_one_acknowledges() -> None:
    bad = chunk_id(7)
    silent = FakeGateway(ack=lambda: False)
    # Acknowledges only once the other gateway has been told too, so both saw the report.
    acking = FakeGateway(ack=lambda: [bad] in silent.reported())
    reports = CorruptReports()
    reports.found(bad)

    async with serving(silent) as silent_address, serving(acking) as acking_address:
        config = HeartbeatConfig((silent_address, acking_address), interval_s=0.01, timeout_s=2)
        beating = asyncio.create_task(beating_to(config, reports))
        try:
            await wait_until(lambda: reports.pending() == [])
            beats = (len(silent.beats), len(acking.beats))
            await wait_until(lambda: len(silent.beats) > beats[0] + 2)
            await wait_until(lambda: len(acking.beats) > beats[1] + 2)
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating

    for gateway in (silent, acking):
        assert [bad] in gateway.reported()
        assert gateway.reported()[-2:] == [[], []], "acknowledged ids are not sent again"
    assert not reports.found(bad)


async def test_a_gateway_name_gets_beats_at_every_address_it_resolves_to() -> None:
    """Gateways behind a headless Service: each address the name has gets beats, addresses that
    go stop getting them, and a failed lookup keeps the beats going."""
    first, second = FakeGateway(ack=lambda: False), FakeGateway(ack=lambda: False)
    answer: list[str] | OSError = ["127.0.0.1"]
    lookups: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append((host, port))
        if isinstance(answer, OSError):
            raise answer
        return list(answer)

    async def more_beats(gateway: FakeGateway) -> None:
        seen = len(gateway.beats)
        await wait_until(lambda: len(gateway.beats) > seen + 2)

    async with serving(first) as first_address:
        port = int(first_address.rsplit(":", 1)[1])
        # Another loopback address on the same port: what a second pod would be.
        async with serving(second, "127.0.0.2", port):
            config = HeartbeatConfig(
                (),
                interval_s=0.01,
                timeout_s=2,
                gateway_names=(f"gateways.test:{port}",),
                lookup_interval_s=0.02,
            )
            beating = asyncio.create_task(beating_to(config, CorruptReports(), resolve))
            try:
                await more_beats(first)
                assert second.beats == []
                answer = ["127.0.0.1", "127.0.0.2"]
                await more_beats(second)
                answer = OSError("name server down")
                looked_up = len(lookups)
                await wait_until(lambda: len(lookups) > looked_up + 2)
                await more_beats(first)
                await more_beats(second)
                answer = ["127.0.0.2"]
                looked_up = len(lookups)
                # Two lookups after the change: the first one stopped the loop.
                await wait_until(lambda: len(lookups) > looked_up + 2)
                stopped_at = len(first.beats)
                await more_beats(second)
                assert len(first.beats) == stopped_at, "an address that left gets no more beats"
            finally:
                beating.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await beating
    assert set(lookups) == {("gateways.test", port)}


async def test_a_name_resolves_to_one_address_family() -> None:
    assert one_family(["fd00::2", "10.0.0.2", "fd00::1", "10.0.0.1", "10.0.0.2"]) == [
        "10.0.0.1",
        "10.0.0.2",
    ]
    assert one_family(["fd00::2", "fd00::1"]) == ["fd00::1", "fd00::2"]
    assert await system_resolver("127.0.0.1", 7002) == ["127.0.0.1"]


async def test_a_name_that_cannot_be_looked_up_leaves_the_other_gateways_beating() -> None:
    listed = FakeGateway(ack=lambda: False)

    async def resolve(host: str, port: int) -> list[str]:
        raise UnicodeError("label empty or too long")  # what a malformed name gives

    async with serving(listed) as address:
        config = HeartbeatConfig(
            (address,),
            interval_s=0.01,
            timeout_s=2,
            gateway_names=("a..b:7002",),
            lookup_interval_s=0.01,
        )
        beating = asyncio.create_task(beating_to(config, CorruptReports(), resolve))
        try:
            await wait_until(lambda: len(listed.beats) > 20)
            assert not beating.done(), "the bad name must not end the heartbeats"
        finally:
            beating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beating


# -- The node wires it all together --------------------------------------------------------------


async def test_a_node_scrubs_and_reports_corruption_in_its_heartbeats(tmp_path: Path) -> None:
    gateway = FakeGateway(ack=lambda: len(gateway.beats) > 3)
    async with serving(gateway) as address:
        settings = NodeSettings(
            listen="127.0.0.1:0",
            data_dir=tmp_path / "node",
            gateways=(address,),
            heartbeat_interval_s=0.02,
            scrub_interval_s=0.05,
            insecure_cluster=True,
        )
        node = await start_node(settings)
        try:
            bad, good = chunk_id(1), chunk_id(2)
            await put(node.store, bad, make_blocks(1000))
            await put(node.store, good, make_blocks(1000))
            flip_byte(node.store, bad, 500)
            await wait_until(lambda: [bad] in gateway.reported())
            await wait_until(lambda: node.reports.pending() == [])
            seen = len(gateway.beats)
            await wait_until(lambda: len(gateway.beats) > seen + 2)
            async with grpc.aio.insecure_channel(node.address) as channel:
                stat = await pb_grpc.ChunkServiceStub(channel).Stat(pb.StatRequest())
        finally:
            await node.stop(0)

    assert gateway.reported()[-1] == []
    assert stat.scrub.corrupt_found == 1 == gateway.beats[-1].status.scrub.corrupt_found
    assert stat.scrub.passes_completed >= 1
    assert stat.scrub.verified_bytes >= 1000
    assert stat.scrub.last_pass_finished > 0


async def test_a_node_with_scrubbing_disabled_reports_zeros(tmp_path: Path) -> None:
    settings = NodeSettings(
        listen="127.0.0.1:0",
        data_dir=tmp_path / "node",
        gateways=(),
        scrub_bytes_per_s=0,
        insecure_cluster=True,
    )
    node = await start_node(settings)
    try:
        assert node.scrubber is None
        assert [status.name for status in node.workers.statuses()] == ["heartbeats"]
        async with grpc.aio.insecure_channel(node.address) as channel:
            stat = await pb_grpc.ChunkServiceStub(channel).Stat(pb.StatRequest())
    finally:
        await node.stop(0)
    assert stat.scrub == pb.ScrubStatus()
