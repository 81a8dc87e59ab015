"""The one owner of background tasks, and the worker registry built on it."""

from __future__ import annotations

import asyncio

import pytest

from diststorage.core.tasks import BackgroundTasks
from diststorage.core.worker import Figures, Step, WorkerState, Workers
from diststorage.testing import FakeClock


async def test_aclose_cancels_what_still_runs_and_waits_for_it() -> None:
    ended: list[str] = []

    async def forever(name: str) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append(name)

    tasks = BackgroundTasks("test")
    await tasks.open()
    tasks.start(forever("a"))
    tasks.start(forever("b"))
    await asyncio.sleep(0)
    assert len(tasks) == 2
    await tasks.aclose()
    assert sorted(ended) == ["a", "b"]
    assert len(tasks) == 0


async def test_a_failing_task_is_logged_and_spares_its_siblings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sibling_done = asyncio.Event()

    async def fails() -> None:
        raise OSError("disk on fire")

    async def sibling() -> None:
        await asyncio.sleep(0.01)
        sibling_done.set()

    async with BackgroundTasks("test") as tasks:
        tasks.start(fails())
        tasks.start(sibling())
        await asyncio.wait_for(sibling_done.wait(), 5)
    assert "disk on fire" in caplog.text


async def test_no_task_starts_after_close() -> None:
    tasks = BackgroundTasks("test")
    await tasks.open()
    await tasks.aclose()

    async def work() -> None:
        raise AssertionError("must not run")

    with pytest.raises(RuntimeError):
        tasks.start(work())


class CountingWorker:
    name = "counting"

    def __init__(self, fail_first: int) -> None:
        self.calls = 0
        self.fail_first = fail_first
        self.closed = False

    def status(self) -> Figures:
        return {"calls": self.calls}

    async def work(self) -> Step:
        self.calls += 1
        if self.calls <= self.fail_first:
            raise OSError(f"failure {self.calls}")
        return Step(WorkerState.IDLE, 10.0)

    async def close(self) -> None:
        self.closed = True


async def test_workers_report_state_units_errors_and_figures() -> None:
    clock = FakeClock()
    worker = CountingWorker(fail_first=2)
    workers = Workers(clock)
    await workers.open()
    held = True
    workers.start(worker, may_run=lambda: not held)
    for _ in range(3):
        await asyncio.sleep(0)
    (status,) = workers.statuses()
    assert (status.name, status.state, status.units) == ("counting", WorkerState.STANDBY, 0)
    held = False
    while worker.calls < 2:
        await asyncio.sleep(0)
    status = workers.statuses()[0]
    assert status.errors_in_row >= 1
    assert status.last_error is not None and "OSError: failure" in status.last_error
    while worker.calls < 4:
        await asyncio.sleep(0)
    status = workers.statuses()[0]
    assert status.state == WorkerState.IDLE
    assert status.errors_in_row == 0
    assert status.units >= 1
    assert status.figures == {"calls": worker.calls}
    await workers.aclose()
    assert worker.closed
