"""Bandwidth limits and rate measurement for background work."""

from __future__ import annotations

from collections import deque

from diststorage.core.clock import SYSTEM_CLOCK, Clock
from diststorage.core.ratelimit import TokenBucket as ByteBudget


class TokenBucket:
    """Lets ``rate_per_s`` units through per second on average, in bursts of up to one
    second's worth. ``take`` waits until the units fit; larger requests than the burst
    simply wait proportionally longer. The bookkeeping is core.ratelimit's; this adds the
    waiting."""

    def __init__(self, rate_per_s: float, clock: Clock = SYSTEM_CLOCK) -> None:
        self._bucket = ByteBudget(rate_per_s, rate_per_s, clock.monotonic())
        self._clock = clock
        self.waited_s = 0.0

    @property
    def rate_per_s(self) -> float:
        return self._bucket.rate_bytes_per_s

    async def take(self, units: int) -> None:
        wait_s = self._bucket.reserve(units, self._clock.monotonic())
        if wait_s > 0:
            self.waited_s += wait_s
            await self._clock.sleep(wait_s)


class RateMeter:
    """Units per second over the last ``window_s`` seconds."""

    def __init__(self, window_s: float = 10.0, clock: Clock = SYSTEM_CLOCK) -> None:
        self._window_s = window_s
        self._clock = clock
        self._events: deque[tuple[float, int]] = deque()
        self.total = 0

    def add(self, units: int) -> None:
        self.total += units
        self._events.append((self._clock.monotonic(), units))
        self._trim()

    def _trim(self) -> None:
        horizon = self._clock.monotonic() - self._window_s
        while self._events and self._events[0][0] < horizon:
            self._events.popleft()

    def per_second(self) -> float:
        self._trim()
        return sum(units for _, units in self._events) / self._window_s
