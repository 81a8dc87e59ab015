"""Virtual time for tests and benchmarks: a ``Clock`` (see core/clock.py) that never waits."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

EPOCH_S = 1_700_000_000.0
"""Wall time at virtual time 0, so that timestamps look like real ones."""


class FakeClock:
    """Virtual time: ``sleep`` returns at once, having moved the clock on by its argument.

    ``now`` is the monotonic reading; a test moves it on by hand (``clock.now += 30``) or lets
    sleeps do it. ``on_sleep`` runs before each sleep: the place where a test injects a fault
    "while the worker waits" or ends a run by raising. ``sleeps`` records every sleep asked for,
    so a test can assert a backoff or a throttle without waiting for it.
    """

    def __init__(self, now: float = 0.0) -> None:
        self.now = now
        self.sleeps: list[float] = []
        self.on_sleep: Callable[[float], None] = lambda seconds: None

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return EPOCH_S + self.now

    async def sleep(self, seconds: float) -> None:
        self.on_sleep(seconds)
        self.sleeps.append(seconds)
        self.now += max(seconds, 0.0)
        # Other tasks run as they would during a real sleep.
        await asyncio.sleep(0)
