"""The one source of time for every part that waits, measures or stamps.

Everything that reads the time takes a ``Clock`` from its constructor, so that a test can hand
it ``diststorage.testing.FakeClock`` and run timeouts, backoffs, leases and rates in virtual
time: no real waiting, and no test that fails on a slow machine.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; for intervals, deadlines and rates."""

    def time(self) -> float:
        """Seconds since the epoch; only for timestamps shown to people and other processes."""

    async def sleep(self, seconds: float) -> None:
        """Like asyncio.sleep; cancellable."""


def utc_now(clock: Clock) -> datetime:
    """The clock's wall time as an aware UTC datetime (what the metadata database stores)."""
    return datetime.fromtimestamp(clock.time(), UTC)


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


SYSTEM_CLOCK = SystemClock()
