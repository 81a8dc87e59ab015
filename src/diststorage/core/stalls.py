"""How long this process itself stood still: time its event loop could not run at all.

A gateway judges a node by how long it has not heard from it. When the gateway's own process
is starved of CPU (a loaded machine) or blocked, the nodes' heartbeats wait unread in its
sockets, and on waking every node looks silent at once: in the hour-long chaos soak a busy
gateway took the whole cluster for down again and again ("0 are up", 121 times) and refused
76 writes while no node fault was held. Time in which this process could not run is not the
nodes' silence, so liveness discounts it (``Inventory``).

A worker that asks to run every ``tick_s`` measures it: lateness beyond ``tolerance_s`` is a
stall. ``stalled_s`` counts a stall still in progress too, for a caller that runs after the
process wakes and before the meter's own next tick.
"""

from __future__ import annotations

from typing import Protocol

from diststorage.core.clock import SYSTEM_CLOCK, Clock
from diststorage.core.worker import Figures, Step, WorkerState

TICK_S = 0.25
# Lateness under this is ordinary scheduling jitter on a busy loop, not a stall.
TOLERANCE_S = 0.25


class Stalls(Protocol):
    def stalled_s(self) -> float:
        """Seconds this process stood still so far; never decreases."""


class StallMeter:
    name = "stall-meter"

    def __init__(
        self, clock: Clock = SYSTEM_CLOCK, tick_s: float = TICK_S, tolerance_s: float = TOLERANCE_S
    ) -> None:
        self._clock = clock
        self._tick_s = tick_s
        self._tolerance_s = tolerance_s
        # None until the worker first runs: a process starting up is not standing still.
        self._last_tick_s: float | None = None
        self._stalled_total_s = 0.0
        self.stalls = 0
        self.longest_s = 0.0

    def _stall_since_tick_s(self, now_s: float) -> float:
        if self._last_tick_s is None:
            return 0.0
        late_s = now_s - self._last_tick_s - self._tick_s
        return max(0.0, late_s - self._tolerance_s)

    def stalled_s(self) -> float:
        """Seconds this process stood still since the meter was made; never decreases."""
        return self._stalled_total_s + self._stall_since_tick_s(self._clock.monotonic())

    def status(self) -> Figures:
        return {"stalls": self.stalls, "longest_s": round(self.longest_s, 3)}

    async def work(self) -> Step:
        now_s = self._clock.monotonic()
        stall_s = self._stall_since_tick_s(now_s)
        if stall_s > 0:
            self._stalled_total_s += stall_s
            self.stalls += 1
            self.longest_s = max(self.longest_s, stall_s)
        self._last_tick_s = now_s
        return Step(WorkerState.IDLE, wait_s=self._tick_s)

    async def close(self) -> None:
        pass


class NoStalls:
    """For a table that is told of no stalls (tests on a virtual clock, tools)."""

    def stalled_s(self) -> float:
        return 0.0
