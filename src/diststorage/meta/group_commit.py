"""Group commit: many callers' writes in one transaction, one commit (one fsync, one
BEGIN/COMMIT round trip and one pooled connection) for all, each caller still answered alone.

A batch first runs its operations one after another with nothing between them. That is
right when none fails, which under load is nearly always: then it commits. Should one raise
(a create that lost its key, a precondition, a refused statement), nothing of that pass is
kept: the transaction rolls back and the batch runs again with each operation in a SAVEPOINT
of its own, so that the one failing takes only its own statements with it and the others
commit. Only operations that may run twice go through the first pass (``retryable``: no
effects outside the session, whatever they compute is computed again); any other write in a
batch sends it straight to the second. A SAVEPOINT and its RELEASE are two statements more
per write: on PostgreSQL two round trips, on SQLite a sixth of the writer thread's time.

A commit that fails fails every write of its batch alike, answer unknown (it may have been
lost after the database committed): like any write whose answer was lost, whoever needs the
outcome reads it back. Nothing after a failed commit runs anything again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from diststorage.core.worker import BUSY, Figures, Step

T = TypeVar("T")

MAX_BATCH = 128
# Eight group commits' worth: a full queue drains in eight commits. A caller beyond it would
# only queue behind a database that is not keeping up anyway, and each queued write holds its
# caller's request (and its memory) meanwhile.
WRITE_QUEUE_BOUND = 8 * MAX_BATCH
# How long a batch may wait for the callers of the last one to come back (see Batches.next),
# and how often it looks whether they are still coming (event loops' timers have 1 ms
# resolution: a shorter step is one anyway).
GATHER_S = 0.004
GATHER_STEP_S = 0.001

Outcome = tuple[Exception | None, Any]
"""An operation's error, or None and its result."""


@dataclass(frozen=True, slots=True)
class QueuedWrite:
    operation: Callable[[Session], Any]
    future: asyncio.Future[Any]
    retryable: bool


def run_together(
    session: Session, operations: Sequence[Callable[[Session], Any]]
) -> list[Any] | None:
    """The results of the operations run back to back in the session's transaction, or None
    if one raised (the transaction must then be rolled back: it holds part of that one)."""
    results: list[Any] = []
    for operation in operations:
        try:
            results.append(operation(session))
            # A flush now, so that an insert the ORM still holds fails here and not at the
            # commit, where it would look like a failed commit.
            session.flush()
        except Exception:
            return None
    return results


def run_each_alone(
    session: Session, operations: Sequence[Callable[[Session], Any]]
) -> list[Outcome]:
    """Each operation in its own SAVEPOINT of the session's transaction, failing alone."""
    outcomes: list[Outcome] = []
    for operation in operations:
        try:
            # Leaving the savepoint flushes: an insert can still fail there, so the outcome
            # is known only after the block.
            with session.begin_nested():
                result = operation(session)
        except Exception as exc:
            outcomes.append((exc, None))
        else:
            outcomes.append((None, result))
    return outcomes


def commit_batch_sync(session: Session, writes: Sequence[QueuedWrite]) -> list[Outcome]:
    """Runs and commits a batch in a new session (see the module docstring)."""
    operations = [write.operation for write in writes]
    if all(write.retryable for write in writes):
        session.begin()
        results = run_together(session, operations)
        if results is not None:
            session.commit()
            return [(None, result) for result in results]
        session.rollback()
    with session.begin():
        return run_each_alone(session, operations)


def answer(writes: Sequence[QueuedWrite], outcomes: Sequence[Outcome]) -> None:
    for write, (error, result) in zip(writes, outcomes, strict=True):
        if write.future.done():
            continue
        if error is not None:
            write.future.set_exception(error)
        else:
            write.future.set_result(result)


def fail(writes: Sequence[QueuedWrite], error: Exception) -> None:
    for write in writes:
        if not write.future.done():
            write.future.set_exception(error)


async def queue_write(
    queue: asyncio.Queue[QueuedWrite], operation: Callable[[Session], T], retryable: bool
) -> T:
    """Queues a write for its worker's next batch and waits for its outcome. While the queue
    is full (``WRITE_QUEUE_BOUND``) the caller waits for room, within the store's database
    timeout like any other wait for the database: past it, the store raises Unavailable."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    await queue.put(QueuedWrite(operation, future, retryable))
    return await future


class Batches:
    """Takes the writes of a queue a batch at a time (see ``next``)."""

    def __init__(self, queue: asyncio.Queue[QueuedWrite]) -> None:
        self._queue = queue
        self._last_size = 0

    async def next(self) -> list[QueuedWrite]:
        """Waits for a write, then takes every write waiting behind it (up to ``MAX_BATCH``);
        those whose callers gave up before the batch began are dropped.

        When fewer are waiting than the last batch held, the callers answered by that batch
        are likely sending their next writes right now, one request after another through
        the event loop: a batch taken at once would hold the first of them alone, and the
        rest would wait out its whole commit (batches of 1 and 15 by turns at 16 callers).
        So it gathers while more keep coming, ``GATHER_STEP_S`` at a time, for at most
        ``GATHER_S``. A lone caller (a last batch of one) never waits."""
        queue = self._queue
        batch = [await queue.get()]
        self._drain(batch)
        if len(batch) < self._last_size:
            deadline = time.monotonic() + GATHER_S
            while len(batch) < min(self._last_size, MAX_BATCH) and time.monotonic() < deadline:
                await asyncio.sleep(GATHER_STEP_S)
                if queue.empty():
                    break
                self._drain(batch)
        self._last_size = len(batch)
        return [write for write in batch if not write.future.done()]

    def _drain(self, batch: list[QueuedWrite]) -> None:
        while len(batch) < MAX_BATCH and not self._queue.empty():
            batch.append(self._queue.get_nowait())


class BatchCommitter:
    """A worker that commits queued writes in groups: one batch per unit of work, each write
    answered through its own future, while the next batch gathers in the queue. A unit waits
    for the first write to come (cancellable). Writes whose callers gave up before the commit
    began are skipped. Subclasses say where a batch runs (``commit``)."""

    name = "group-commit"

    def __init__(self) -> None:
        self.queue: asyncio.Queue[QueuedWrite] = asyncio.Queue(WRITE_QUEUE_BOUND)
        self._batches = Batches(self.queue)
        self.commits = 0

    def status(self) -> Figures:
        return {"queued": self.queue.qsize(), "bound": WRITE_QUEUE_BOUND, "commits": self.commits}

    async def commit(self, batch: list[QueuedWrite]) -> list[Outcome]:
        raise NotImplementedError

    async def work(self) -> Step:
        batch = await self._batches.next()
        if not batch:
            return BUSY
        try:
            outcomes = await self.commit(batch)
        except Exception as exc:
            # The commit itself failed: nothing of the batch is stored.
            fail(batch, exc)
            return BUSY
        self.commits += 1
        answer(batch, outcomes)
        return BUSY

    async def close(self) -> None:
        pass


class PostgresGroupCommit(BatchCommitter):
    """PostgreSQL's grouped writes, on one connection."""

    name = "postgres-group-commit"

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        super().__init__()
        self._sessions = sessions

    async def commit(self, batch: list[QueuedWrite]) -> list[Outcome]:
        async with self._sessions() as session:
            return await session.run_sync(commit_batch_sync, batch)
