"""The one owner of background tasks, and the worker registry built on it."""

from __future__ import annotations

import asyncio

import pytest

from diststorage.core.tasks import BackgroundTasks
from diststorage.core.worker import Figures, Step, Workers, WorkerState
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
    assert not tasks.closed
    await tasks.aclose()
    assert tasks.closed

    async def work() -> None:
        raise AssertionError("must not run")

    with pytest.raises(RuntimeError):
        tasks.start(work())


class SteppedWorker:
    """Does one unit per outcome the test hands it: an error to raise, or None for a good unit."""

    name = "stepped"

    def __init__(self) -> None:
        self.outcomes: asyncio.Queue[Exception | None] = asyncio.Queue()
        self.calls = 0
        self.closed = False

    async def unit(self, outcome: Exception | None) -> None:
        """Hands the worker one outcome and returns once the supervisor has dealt with it."""
        await self.outcomes.put(outcome)
        await self.outcomes.join()
        # The supervisor records the unit before its next await; let it get there.
        await asyncio.sleep(0)

    def status(self) -> Figures:
        return {"calls": self.calls}

    async def work(self) -> Step:
        outcome = await self.outcomes.get()
        self.calls += 1
        self.outcomes.task_done()
        if outcome is not None:
            raise outcome
        return Step(WorkerState.IDLE, 10.0)

    async def close(self) -> None:
        self.closed = True


async def test_workers_report_state_units_errors_and_figures() -> None:
    clock = FakeClock()
    worker = SteppedWorker()
    workers = Workers(clock)
    await workers.open()
    held = True
    workers.start(worker, may_run=lambda: not held)
    await asyncio.sleep(0)
    (status,) = workers.statuses()
    assert (status.name, status.state, status.units) == ("stepped", WorkerState.STANDBY, 0)

    held = False
    await worker.unit(OSError("disk on fire"))
    await worker.unit(OSError("still on fire"))
    status = workers.statuses()[0]
    assert (status.errors_in_row, status.units) == (2, 0)
    assert status.last_error == "OSError: still on fire"

    await worker.unit(None)
    status = workers.statuses()[0]
    assert (status.state, status.errors_in_row, status.units) == (WorkerState.IDLE, 0, 1)
    assert status.figures == {"calls": 3}
    # The supervisor backed off 1 s, then 2 s, after the errors; then waited as the unit asked.
    assert clock.sleeps[-3:] == [1.0, 2.0, 10.0]
    await workers.aclose()
    assert worker.closed


async def test_a_task_cancelled_before_it_ran_leaves_no_unawaited_coroutine() -> None:
    ran: list[bool] = []

    async def work() -> None:
        ran.append(True)

    tasks = BackgroundTasks("test")
    await tasks.open()
    coroutine = work()
    tasks.start(coroutine)
    await tasks.aclose()
    assert ran == []
    # Closed: sending into it now fails as for any finished coroutine.
    with pytest.raises(RuntimeError):
        coroutine.send(None)


async def test_stopping_one_worker_closes_it_and_leaves_the_others_running() -> None:
    workers = Workers(FakeClock())
    await workers.open()
    kept, stopped = SteppedWorker(), SteppedWorker()
    stopped.name = "stopped"
    workers.start(kept)
    workers.start(stopped)
    await stopped.unit(None)
    await workers.stop(stopped)
    assert stopped.closed and not kept.closed
    assert [status.name for status in workers.statuses()] == ["stepped"]
    await kept.unit(None)
    assert workers.statuses()[0].units == 1
    await workers.aclose()
    assert kept.closed
