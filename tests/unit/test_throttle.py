"""The token bucket and the rate meter, in virtual time: nothing here sleeps for real."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Awaitable, Coroutine
from typing import Any

import pytest

from diststorage.gateway.workers.throttle import RateMeter, TokenBucket
from diststorage.testing import FakeClock
from diststorage.testing.clock import EPOCH_S

RATE = 1000.0
"""Units per second of the buckets under test; a full bucket holds one second's worth."""

# Enough event-loop turns for every task that can run to reach its next (virtual) sleep; the
# tasks here await nothing but the timeline.
SETTLE_TURNS = 5


class Timeline:
    """A virtual clock whose ``sleep`` waits for virtual time, not real time.

    Unlike ``FakeClock``, whose sleeps return at once one after another, sleepers here
    overlap: ``run`` drives tasks: whenever every one of them is asleep, it jumps the clock to the
    earliest wake-up and wakes that sleeper. Sleepers overlap as they would in real time, so
    concurrent takers of one bucket are seen as concurrent.
    """

    def __init__(self) -> None:
        self.now = 0.0
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return EPOCH_S + self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        wake = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + seconds, next(self._order), wake))
        await wake

    def advance(self, seconds: float) -> None:
        """Time passing with nobody asleep (an idle bucket)."""
        assert not self._timers
        self.now += seconds

    async def run(self, *work: Coroutine[Any, Any, None]) -> None:
        tasks = [asyncio.create_task(w) for w in work]
        while True:
            for _ in range(SETTLE_TURNS):
                await asyncio.sleep(0)
            if all(task.done() for task in tasks):
                break
            assert self._timers, "tasks are blocked on something other than the timeline"
            self.now, _, wake = heapq.heappop(self._timers)
            wake.set_result(None)
        for task in tasks:
            task.result()  # raise what a task raised


def bucket_on(timeline: Timeline, rate_per_s: float = RATE) -> TokenBucket:
    return TokenBucket(rate_per_s, clock=timeline)


async def finish_time(timeline: Timeline, work: Awaitable[None]) -> float:
    """Runs ``work`` alone on the timeline; returns the virtual moment it ended."""

    async def wrapped() -> None:
        await work

    await timeline.run(wrapped())
    return timeline.now


async def test_a_full_bucket_lets_one_seconds_worth_through_at_once() -> None:
    timeline = Timeline()
    bucket = bucket_on(timeline)
    assert bucket.rate_per_s == RATE
    assert await finish_time(timeline, bucket.take(int(RATE))) == 0.0
    assert bucket.waited_s == 0.0
    # The next unit waits exactly for one unit's refill.
    assert await finish_time(timeline, bucket.take(1)) == pytest.approx(1 / RATE)
    assert bucket.waited_s == pytest.approx(1 / RATE)


async def test_a_request_larger_than_the_burst_waits_proportionally() -> None:
    timeline = Timeline()
    bucket = bucket_on(timeline)
    seconds_worth = 5
    await finish_time(timeline, bucket.take(int(seconds_worth * RATE)))
    # One second's worth was in the bucket; the rest comes at the rate.
    assert timeline.now == pytest.approx(seconds_worth - 1)
    assert bucket.waited_s == pytest.approx(seconds_worth - 1)


async def test_idle_time_refills_but_never_beyond_the_burst() -> None:
    timeline = Timeline()
    bucket = bucket_on(timeline)
    await finish_time(timeline, bucket.take(int(RATE)))  # empty now
    timeline.advance(0.25)
    start = timeline.now
    assert await finish_time(timeline, bucket.take(int(0.25 * RATE))) == start  # refilled
    timeline.advance(100.0)  # a long idle spell still leaves one second's worth
    start = timeline.now
    assert await finish_time(timeline, bucket.take(int(RATE))) == start
    assert await finish_time(timeline, bucket.take(int(RATE))) == pytest.approx(start + 1.0)


@pytest.mark.parametrize(("rate_per_s", "piece"), [(RATE, 100), (RATE, 7), (50.0, 1), (3.0, 1)])
async def test_the_long_run_rate_is_the_configured_rate(rate_per_s: float, piece: int) -> None:
    """After the first burst, units pass at exactly the rate, never faster."""
    timeline = Timeline()
    bucket = bucket_on(timeline, rate_per_s)
    admitted = 0
    # (moment, units admitted by then), after every take.
    history: list[tuple[float, int]] = []

    async def taker() -> None:
        nonlocal admitted
        for _ in range(round(20 * rate_per_s / piece)):  # about twenty seconds' worth
            await bucket.take(piece)
            admitted += piece
            history.append((timeline.now, admitted))

    await timeline.run(taker())
    burst = rate_per_s
    for moment, units in history:
        assert units <= burst + rate_per_s * moment + 1e-6 * units, (moment, units)
    assert timeline.now == pytest.approx((admitted - burst) / rate_per_s)
    assert bucket.waited_s == pytest.approx(timeline.now)


async def test_concurrent_takers_share_the_rate() -> None:
    timeline = Timeline()
    bucket = bucket_on(timeline)
    takers = 4
    finished: list[float] = []

    async def taker() -> None:
        await bucket.take(int(RATE))
        finished.append(timeline.now)

    await timeline.run(*(taker() for _ in range(takers)))
    # The first gets the burst; each other one waits a second longer than the one before.
    assert sorted(finished) == pytest.approx([float(n) for n in range(takers)])
    assert bucket.waited_s == pytest.approx(sum(range(takers)))


def test_rate_meter_averages_over_its_window() -> None:
    clock = FakeClock()
    window_s = 10.0
    meter = RateMeter(window_s, clock)
    assert meter.per_second() == 0.0
    meter.add(50)
    clock.now = 5.0
    meter.add(30)
    assert meter.per_second() == pytest.approx((50 + 30) / window_s)
    clock.now = window_s  # the first event is exactly one window old: still in
    assert meter.per_second() == pytest.approx((50 + 30) / window_s)
    clock.now = window_s + 0.001
    assert meter.per_second() == pytest.approx(30 / window_s)
    clock.now = 5.0 + window_s + 0.001
    assert meter.per_second() == 0.0
    assert meter.total == 50 + 30  # the total never forgets


def test_rate_meter_measures_a_steady_flow() -> None:
    clock = FakeClock()
    window_s, tick_s, per_tick = 2.0, 0.1, 25
    meter = RateMeter(window_s, clock)
    for tick in range(1, 101):  # ten seconds at 250 units per second
        clock.now = tick * tick_s
        meter.add(per_tick)
    # The window holds 20 ticks, or 21 when the tick at its far edge falls just inside it.
    ticks = round(window_s / tick_s)
    assert ticks * per_tick / window_s <= meter.per_second() <= (ticks + 1) * per_tick / window_s
    assert meter.total == 100 * per_tick
