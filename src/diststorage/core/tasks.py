"""One owner for the tasks a long-lived part starts and does not wait for.

Fire-and-forget work (deleting garbage after a write, reporting a damaged chunk, a supervised
worker loop) still needs an owner: something that keeps a reference (the event loop holds only
a weak one), logs what failed, and on shutdown cancels what is left and waits for it. Without
one, every part keeps its own set of tasks and its own way of ending them.

``BackgroundTasks`` is that owner, built on ``asyncio.TaskGroup`` so that the task group's
guarantees hold: when ``aclose`` returns, every task it started has finished. Unlike a bare task
group, one task's failure does not cancel its siblings: a failed background task is logged and
forgotten, since each is independent work.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


class BackgroundTasks:
    """Starts independent background tasks and ends them all, once, on ``aclose``.

    ``start`` may be called from any coroutine on the loop once ``open`` ran; after ``aclose``
    it refuses (a shutting-down part must not start new work).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._group: asyncio.TaskGroup | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._closed = False

    async def open(self) -> None:
        assert self._group is None, f"{self._name}: opened twice"
        self._group = asyncio.TaskGroup()
        await self._group.__aenter__()

    def start(self, work: Coroutine[Any, Any, None], name: str | None = None) -> asyncio.Task[None]:
        """Runs ``work`` in the background; a failure is logged, never raised to anyone. The
        task is handed back for an owner that ends one task before the others."""
        if self._group is None or self._closed:
            work.close()
            raise RuntimeError(f"{self._name}: background task started while not running")
        task = self._group.create_task(self._guarded(work), name=name)
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        # A task cancelled before it first ran never awaited ``work``: close it, so that it
        # is not reported as a coroutine that was never awaited (a no-op once it has run).
        task.add_done_callback(lambda _: work.close())
        return task

    @property
    def closed(self) -> bool:
        """True from the start of ``aclose`` on: ``start`` would refuse."""
        return self._closed

    def __len__(self) -> int:
        return len(self._running)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception:
            # A background task's failure is its own: logged here, since nobody awaits it,
            # and kept from the task group, which would cancel every sibling.
            log.exception("%s: background task failed", self._name)

    async def aclose(self) -> None:
        """Cancels every task still running and waits until all have ended."""
        if self._closed:
            return
        self._closed = True
        group, self._group = self._group, None
        if group is None:
            return
        for task in list(self._running):
            task.cancel()
        await group.__aexit__(None, None, None)

    async def __aenter__(self) -> BackgroundTasks:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()
