"""The one shape of a background job, on a node or a gateway, and the supervisor that runs it.

A worker does one bounded unit of work per ``work()`` call and says what should happen next:
call again at once (busy), after a pause the worker chose to respect a limit (throttled), or
after a pause because there is nothing to do (idle). The supervisor owns the loop: it sleeps,
logs and backs off after errors, holds the worker back while it may not run (a gateway that
does not lead), and makes sure the worker is closed however the loop ends. Time comes from an
injected ``Clock`` so that tests run the loop in virtual time.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

# After a failed unit the supervisor waits this long, doubling per failure in a row up to the
# maximum, so that a worker broken by a persistent fault (a dead disk) does not spin.
ERROR_BACKOFF_S = 1.0
MAX_ERROR_BACKOFF_S = 60.0
# How often a worker held back by ``may_run`` asks again.
STANDBY_POLL_S = 1.0


class WorkerState(enum.Enum):
    BUSY = "busy"
    THROTTLED = "throttled"
    IDLE = "idle"


@dataclass(frozen=True, slots=True)
class Step:
    """What one unit of work asks of the supervisor."""

    state: WorkerState
    wait_s: float = 0.0
    """How long to sleep before the next unit (throttled and idle only)."""


BUSY = Step(WorkerState.BUSY)


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never jumps; for intervals and rates."""

    def time(self) -> float:
        """Seconds since the epoch; only for timestamps shown to people and other processes."""

    async def sleep(self, seconds: float) -> None:
        """Like asyncio.sleep; cancellable."""


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class Worker(Protocol):
    name: str

    async def work(self) -> Step:
        """Does one bounded unit of work. Raising is allowed: the supervisor logs it, backs off
        and calls again, so the worker must leave itself consistent before it raises."""

    async def close(self) -> None:
        """Releases what the worker holds between units (open files). Called exactly once."""


def _always() -> bool:
    return True


async def run_worker(
    worker: Worker,
    clock: Clock,
    may_run: Callable[[], bool] = _always,
    max_backoff_s: float = MAX_ERROR_BACKOFF_S,
) -> None:
    """Runs ``worker`` until cancelled, whenever ``may_run()``; always closes it on the way
    out. After failures the pause doubles up to ``max_backoff_s``."""
    failures = 0
    try:
        while True:
            if not may_run():
                await clock.sleep(STANDBY_POLL_S)
                continue
            try:
                step = await worker.work()
            except Exception:
                failures += 1
                backoff_s = min(ERROR_BACKOFF_S * 2 ** (failures - 1), max_backoff_s)
                # The 1st, 2nd, 4th, 8th... failure in a row: a persistent fault is seen,
                # without a line every few seconds.
                if failures & (failures - 1) == 0:
                    log.exception(
                        "worker %s failed (%d in a row); next try in %.0f s",
                        worker.name,
                        failures,
                        backoff_s,
                    )
                await clock.sleep(backoff_s)
                continue
            failures = 0
            if step.wait_s > 0:
                await clock.sleep(step.wait_s)
            else:
                # A busy worker whose units never block (all cached) must still let others run.
                await asyncio.sleep(0)
    finally:
        await worker.close()
