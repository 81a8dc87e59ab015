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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from diststorage.core.clock import Clock
from diststorage.core.tasks import BackgroundTasks

log = logging.getLogger(__name__)

# After a failed unit the supervisor waits this long, doubling per failure in a row up to the
# maximum, so that a worker broken by a persistent fault (a dead disk) does not spin.
ERROR_BACKOFF_S = 1.0
MAX_ERROR_BACKOFF_S = 60.0
# How often a worker held back by ``may_run`` asks again.
STANDBY_POLL_S = 1.0


class WorkerState(enum.StrEnum):
    BUSY = "busy"
    THROTTLED = "throttled"
    IDLE = "idle"
    # Set by the supervisor: not started yet, or held back by ``may_run`` (a gateway that does
    # not lead runs no leader-only worker).
    STANDBY = "standby"


@dataclass(frozen=True, slots=True)
class Step:
    """What one unit of work asks of the supervisor."""

    state: WorkerState
    wait_s: float = 0.0
    """How long to sleep before the next unit (throttled and idle only)."""


BUSY = Step(WorkerState.BUSY)


Figures = Mapping[str, int | float | str]
"""A worker's own figures for people to read (chunks repaired, bytes scrubbed): flat, typed."""


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """What a worker is doing, as its supervisor and the worker itself tell it."""

    name: str
    state: WorkerState
    units: int
    """Units of work done since start."""
    errors_in_row: int
    last_error: str | None
    figures: Figures = field(default_factory=dict)


class Worker(Protocol):
    name: str

    def status(self) -> Figures:
        """The worker's own figures for its status line; cheap, and never raises."""

    async def work(self) -> Step:
        """Does one bounded unit of work. Raising is allowed: the supervisor logs it, backs off
        and calls again, so the worker must leave itself consistent before it raises."""

    async def close(self) -> None:
        """Releases what the worker holds between units (open files). Called exactly once."""


def _always() -> bool:
    return True


class WorkerRecord:
    """What the supervisor saw of one worker; read by ``Workers.statuses``."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.state = WorkerState.STANDBY
        self.units = 0
        self.errors_in_row = 0
        self.last_error: str | None = None

    def status(self) -> WorkerStatus:
        return WorkerStatus(
            self.worker.name,
            self.state,
            self.units,
            self.errors_in_row,
            self.last_error,
            self.worker.status(),
        )


async def run_worker(
    worker: Worker,
    clock: Clock,
    may_run: Callable[[], bool] = _always,
    max_backoff_s: float = MAX_ERROR_BACKOFF_S,
    record: WorkerRecord | None = None,
) -> None:
    """Runs ``worker`` until cancelled, whenever ``may_run()``; always closes it on the way
    out. After failures the pause doubles up to ``max_backoff_s``. What happens is kept in
    ``record`` for status readers."""
    seen = record if record is not None else WorkerRecord(worker)
    failures = 0
    try:
        while True:
            if not may_run():
                seen.state = WorkerState.STANDBY
                await clock.sleep(STANDBY_POLL_S)
                continue
            try:
                step = await worker.work()
            except Exception as error:
                failures += 1
                seen.errors_in_row = failures
                seen.last_error = f"{type(error).__name__}: {error}"
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
            seen.errors_in_row = 0
            seen.units += 1
            seen.state = step.state
            if step.wait_s > 0:
                await clock.sleep(step.wait_s)
            else:
                # A busy worker whose units never block (all cached) must still let others run.
                await asyncio.sleep(0)
    finally:
        await worker.close()


class Workers:
    """Runs a part's workers, each under ``run_worker``, and tells their status.

    The one owner of every supervised loop in a daemon: ``start`` hands a worker to the
    background tasks, ``stop`` ends one of them, ``aclose`` cancels them all and waits until
    every worker is closed.
    """

    def __init__(self, clock: Clock, max_backoff_s: float = MAX_ERROR_BACKOFF_S) -> None:
        self._clock = clock
        self._max_backoff_s = max_backoff_s
        self._tasks = BackgroundTasks("workers")
        # By id(worker), in the order they started.
        self._running: dict[int, tuple[WorkerRecord, asyncio.Task[None]]] = {}

    async def open(self) -> None:
        await self._tasks.open()

    def start(self, worker: Worker, may_run: Callable[[], bool] = _always) -> None:
        record = WorkerRecord(worker)
        loop = run_worker(worker, self._clock, may_run, self._max_backoff_s, record)
        self._running[id(worker)] = (record, self._tasks.start(loop, name=worker.name))

    async def stop(self, worker: Worker) -> None:
        """Ends one worker started here (cancelled, then closed) and forgets it; the others
        run on."""
        _, task = self._running.pop(id(worker))
        task.cancel()
        await asyncio.wait([task])

    def statuses(self) -> list[WorkerStatus]:
        return [record.status() for record, _ in self._running.values()]

    async def aclose(self) -> None:
        await self._tasks.aclose()
