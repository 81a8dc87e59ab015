"""The one shape every background worker has, and the loop that runs it.

A worker does one bounded unit of work per ``step`` and says how that went; the supervisor
calls it again at once while it is busy, and after its idle interval otherwise. An exception
is logged and counted, never fatal: the worker is tried again after a pause.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

ERROR_PAUSE_S = 5.0


class WorkerState(enum.StrEnum):
    BUSY = "busy"
    IDLE = "idle"
    THROTTLED = "throttled"


class Worker(Protocol):
    name: str
    idle_interval_s: float

    async def step(self) -> WorkerState:
        """One bounded unit of work. Cancellation may come at any await; the work must be
        safe to redo (progress lives in the database)."""
        ...


async def supervise(worker: Worker, may_run: Callable[[], bool] = lambda: True) -> None:
    """Runs ``worker`` until cancelled, whenever ``may_run()`` (this gateway leads)."""
    failures = 0
    while True:
        if not may_run():
            await asyncio.sleep(worker.idle_interval_s)
            continue
        try:
            state = await worker.step()
            failures = 0
        except Exception:
            failures += 1
            if failures == 1 or failures % 60 == 0:
                log.exception("%s worker failed (%d in a row)", worker.name, failures)
            await asyncio.sleep(ERROR_PAUSE_S)
            continue
        if state == WorkerState.IDLE:
            await asyncio.sleep(worker.idle_interval_s)
        else:
            # Let foreground work in between units.
            await asyncio.sleep(0)
