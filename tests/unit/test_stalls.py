"""The stall meter on a virtual clock, and the node table discounting this process's stalls
from its nodes' silence: a gateway that could not run did not hear its nodes because it could
not listen, and must not take them for down on waking."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from diststorage.core.stalls import TICK_S, TOLERANCE_S, StallMeter
from diststorage.gateway.inventory import Inventory
from diststorage.meta import MetadataStore, NodeLiveness, NodeReport
from diststorage.testing import FakeClock

SUSPECT_S = 3.0
TIMEOUT_S = 10.0
NODE = f"{1:032x}"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MetadataStore]:
    opened = await MetadataStore.open(f"sqlite:///{tmp_path / 'm.db'}", 5.0)
    yield opened
    await opened.close()


def report() -> NodeReport:
    return NodeReport(
        node_id=NODE,
        address="127.0.0.1:7001",
        capacity_bytes=2 << 30,
        used_bytes=1 << 30,
        free_bytes=1 << 30,
        chunk_count=1,
    )


async def tick(meter: StallMeter, clock: FakeClock, late_s: float = 0.0) -> None:
    """One turn of the meter's loop: its sleep, ``late_s`` more, then its unit."""
    clock.now += TICK_S + late_s
    await meter.work()


async def test_a_meter_that_was_never_run_counts_no_stall() -> None:
    clock = FakeClock(now=100.0)
    meter = StallMeter(clock)
    clock.now += 60.0  # a gateway starting up: migration, database, servers
    assert meter.stalled_s() == 0.0
    await meter.work()
    assert (meter.stalled_s(), meter.stalls) == (0.0, 0)


async def test_jitter_is_no_stall_and_a_late_tick_is_one() -> None:
    clock = FakeClock(now=100.0)
    meter = StallMeter(clock)
    await meter.work()
    await tick(meter, clock, late_s=TOLERANCE_S)  # late by the tolerance exactly: jitter
    assert (meter.stalled_s(), meter.stalls) == (0.0, 0)
    await tick(meter, clock, late_s=5.0)
    assert meter.stalled_s() == pytest.approx(5.0 - TOLERANCE_S)
    assert meter.stalls == 1
    assert meter.longest_s == pytest.approx(5.0 - TOLERANCE_S)


async def test_a_stall_in_progress_is_counted_before_the_meter_sees_it() -> None:
    clock = FakeClock(now=100.0)
    meter = StallMeter(clock)
    await meter.work()
    clock.now += TICK_S + 8.0  # woken; something else runs before the meter's unit
    in_progress = meter.stalled_s()
    assert in_progress == pytest.approx(8.0 - TOLERANCE_S)
    await meter.work()
    assert meter.stalled_s() == pytest.approx(in_progress)  # the same stall, counted once


async def test_a_gateway_that_stood_still_does_not_take_its_nodes_for_down(
    store: MetadataStore,
) -> None:
    clock = FakeClock(now=1000.0)
    meter = StallMeter(clock)
    inventory = Inventory(store, TIMEOUT_S, SUSPECT_S, clock, stalls=meter)
    await meter.work()
    await inventory.heartbeat(report())
    # The process could not run for 20 s; on waking, before any queued beat is read:
    clock.now += TICK_S + 20.0
    assert inventory.state(NODE) == NodeLiveness.UP
    assert inventory.down_for_s(NODE) is None
    await meter.work()
    assert inventory.state(NODE) == NodeLiveness.UP
    # Silence while the process runs still counts: the node goes suspect, then down, after
    # as many seconds of running as the suspect time and the timeout allow (the woken tick's
    # own lateness within the tolerance counting as silence too).
    woken_silence_s = TICK_S + TOLERANCE_S
    running_s = 0.0
    states: list[NodeLiveness] = []
    while inventory.state(NODE) != NodeLiveness.DOWN:
        states.append(inventory.state(NODE))
        await tick(meter, clock)
        running_s += TICK_S
    assert NodeLiveness.SUSPECT in states
    assert woken_silence_s + running_s == pytest.approx(TIMEOUT_S + TICK_S)


async def test_without_a_meter_every_silent_second_counts(store: MetadataStore) -> None:
    clock = FakeClock(now=1000.0)
    inventory = Inventory(store, TIMEOUT_S, SUSPECT_S, clock)
    await inventory.heartbeat(report())
    clock.now += TIMEOUT_S + 1.0
    assert inventory.state(NODE) == NodeLiveness.DOWN


async def test_a_node_unheard_since_start_is_down_and_its_grace_skips_stalls(
    store: MetadataStore,
) -> None:
    clock = FakeClock(now=1000.0)
    meter = StallMeter(clock)
    inventory = Inventory(store, TIMEOUT_S, SUSPECT_S, clock, stalls=meter)
    await meter.work()
    assert inventory.state(NODE) == NodeLiveness.DOWN
    await tick(meter, clock, late_s=30.0)
    # 30 s of the 30.25 s since start were a stall: the node's timeout has not run out yet.
    down_for = inventory.down_for_s(NODE)
    assert down_for is not None and down_for < 0
