"""Small objects' commits grouped into shared transactions, on SQLite and PostgreSQL alike:
every caller answered for its own write only once that write is committed, one caller's
error failing no other, and of racing conditional commits exactly one winning."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from conftest import PG_ADMIN, md5_hex
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from diststorage.core.errors import AlreadyExists, ObjectNotFound, PreconditionFailed
from diststorage.core.ids import new_id
from diststorage.core.policy import INLINE_POLICY
from diststorage.meta import MetadataStore, NewObject
from diststorage.meta.group_commit import (
    GATHER_S,
    Batches,
    QueuedWrite,
    commit_batch_sync,
)

WRITES = 48


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'm.db'}"
        return
    name = f"diststorage_test_{new_id()[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def _new(key: str, namespace: str = "default") -> NewObject:
    return NewObject(new_id(), namespace, key, "text/plain", INLINE_POLICY, 4096, 8, new_id())


def _commits(store: MetadataStore) -> int:
    """Group commits the store's backend has made so far."""
    statuses = store._backend.workers.statuses()  # type: ignore[attr-defined]
    return sum(int(status.figures["commits"]) for status in statuses)


async def _put(
    store: MetadataStore,
    key: str,
    body: bytes,
    replace: bool = True,
    if_match: str | None = None,
    namespace: str = "default",
) -> str:
    outcome = await store.commit_inline(
        _new(key, namespace), body, md5_hex(body), replace, if_match=if_match
    )
    return outcome.info.etag


async def test_concurrent_commits_share_transactions_and_all_last(database_url: str) -> None:
    store = await MetadataStore.open(database_url, 10)
    try:
        bodies = {f"k{i}": f"body {i}".encode() for i in range(WRITES)}
        await asyncio.gather(*(_put(store, key, body) for key, body in bodies.items()))
        assert _commits(store) < WRITES, "some writes shared a commit"
    finally:
        await store.close()
    # What every caller was told is committed is there for a store opened afresh.
    reopened = await MetadataStore.open(database_url, 10)
    try:
        for key, body in bodies.items():
            assert (await reopened.get_layout("default", key)).inline_body == body
    finally:
        await reopened.close()


async def test_a_failing_commit_fails_alone_with_its_own_error(database_url: str) -> None:
    store = await MetadataStore.open(database_url, 10)
    try:
        taken = await _put(store, "taken", b"first")
        good = {f"ok{i}": f"fine {i}".encode() for i in range(WRITES)}
        calls = [_put(store, key, body) for key, body in good.items()]
        # Interleaved with the good ones, so that they share batches.
        calls[5:5] = [_put(store, "taken", b"create over it", replace=False)]
        calls[20:20] = [_put(store, "taken", b"wrong tag", if_match="0" * 32)]
        calls[30:30] = [_put(store, "nowhere", b"x", namespace="no-such-bucket")]
        results = await asyncio.gather(*calls, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        assert sorted(type(e).__name__ for e in errors) == [
            "AlreadyExists",
            "ObjectNotFound",
            "PreconditionFailed",
        ]
        assert _commits(store) < len(calls)
        for key, body in good.items():
            assert (await store.get_layout("default", key)).inline_body == body
        layout = await store.get_layout("default", "taken")
        assert (layout.inline_body, layout.info.etag) == (b"first", taken)
    finally:
        await store.close()


async def test_racing_conditional_commits_have_one_winner(database_url: str) -> None:
    store = await MetadataStore.open(database_url, 10)
    try:
        first = await _put(store, "contended", b"v1")
        bodies = [f"v2 from writer {i}".encode() for i in range(16)]
        results = await asyncio.gather(
            *(_put(store, "contended", body, if_match=first) for body in bodies),
            return_exceptions=True,
        )
        winners = [i for i, r in enumerate(results) if isinstance(r, str)]
        assert len(winners) == 1
        assert all(
            isinstance(r, PreconditionFailed) for i, r in enumerate(results) if i != winners[0]
        )
        layout = await store.get_layout("default", "contended")
        assert layout.inline_body == bodies[winners[0]]

        creates = await asyncio.gather(
            *(_put(store, "created-once", body, replace=False) for body in bodies),
            return_exceptions=True,
        )
        assert sum(isinstance(r, str) for r in creates) == 1
        assert sum(isinstance(r, AlreadyExists) for r in creates) == len(bodies) - 1
    finally:
        await store.close()


async def test_an_unknown_namespace_is_not_found(database_url: str) -> None:
    store = await MetadataStore.open(database_url, 10)
    try:
        with pytest.raises(ObjectNotFound):
            await _put(store, "k", b"x", namespace="missing")
    finally:
        await store.close()


# -- the batch itself ---------------------------------------------------------------------


def _sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = create_engine(f"sqlite:///{tmp_path / 'batch.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE t (k TEXT PRIMARY KEY)"))
    return sessionmaker(engine)


def _insert(key: str, runs: list[str]) -> object:
    def operation(session: Session) -> str:
        runs.append(key)
        session.execute(text("INSERT INTO t VALUES (:k)"), {"k": key})
        return key

    return operation


def _queued(operation: object, retryable: bool = True) -> QueuedWrite:
    loop = asyncio.new_event_loop()
    try:
        return QueuedWrite(operation, loop.create_future(), retryable)  # type: ignore[arg-type]
    finally:
        loop.close()


def _keys(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return [row[0] for row in session.execute(text("SELECT k FROM t ORDER BY k"))]


def test_a_batch_without_failures_runs_each_write_once(tmp_path: Path) -> None:
    sessions = _sessions(tmp_path)
    runs: list[str] = []
    with sessions() as session:
        outcomes = commit_batch_sync(session, [_queued(_insert(k, runs)) for k in "abc"])
    assert outcomes == [(None, "a"), (None, "b"), (None, "c")]
    assert runs == ["a", "b", "c"]
    assert _keys(sessions) == ["a", "b", "c"]


def test_a_failure_reruns_the_batch_each_write_alone(tmp_path: Path) -> None:
    sessions = _sessions(tmp_path)
    runs: list[str] = []
    writes = [_queued(_insert(k, runs)) for k in ("a", "b", "a", "c")]
    with sessions() as session:
        outcomes = commit_batch_sync(session, writes)
    assert [error is None for error, _ in outcomes] == [True, True, False, True]
    assert isinstance(outcomes[2][0], IntegrityError)
    # The first pass stopped at the duplicate and was rolled back; the second ran all four.
    assert runs == ["a", "b", "a", "a", "b", "a", "c"]
    assert _keys(sessions) == ["a", "b", "c"]


def test_a_write_that_may_not_run_twice_is_never_run_twice(tmp_path: Path) -> None:
    sessions = _sessions(tmp_path)
    runs: list[str] = []
    writes = [_queued(_insert("a", runs)), _queued(_insert("a", runs), retryable=False)]
    with sessions() as session:
        outcomes = commit_batch_sync(session, writes)
    assert runs == ["a", "a"]
    assert outcomes[0] == (None, "a") and isinstance(outcomes[1][0], IntegrityError)
    assert _keys(sessions) == ["a"]


# -- gathering a batch ----------------------------------------------------------------------


async def _queue_writes(queue: asyncio.Queue[QueuedWrite], count: int, spacing_s: float) -> None:
    loop = asyncio.get_running_loop()
    for _ in range(count):
        await queue.put(QueuedWrite(lambda _s: None, loop.create_future(), True))
        await asyncio.sleep(spacing_s)


async def test_a_batch_waits_for_the_last_batchs_callers_coming_back() -> None:
    queue: asyncio.Queue[QueuedWrite] = asyncio.Queue()
    batches = Batches(queue)
    await _queue_writes(queue, 8, 0)
    assert len(await batches.next()) == 8
    # The eight callers come back one after another, a little apart, as requests do.
    arriving = asyncio.create_task(_queue_writes(queue, 8, 0))
    assert len(await batches.next()) == 8
    await arriving


def _write() -> QueuedWrite:
    return QueuedWrite(lambda _s: None, asyncio.get_running_loop().create_future(), True)


async def test_a_lone_caller_never_waits() -> None:
    queue: asyncio.Queue[QueuedWrite] = asyncio.Queue()
    batches = Batches(queue)
    loop = asyncio.get_running_loop()
    for _ in range(3):
        await queue.put(_write())
        # Due at the next turn of the loop: a batch that waited at all would take it.
        loop.call_soon(queue.put_nowait, _write())
        assert len(await batches.next()) == 1
        await asyncio.sleep(0)
        assert len(await batches.next()) == 1


async def test_gathering_ends_when_nobody_else_comes() -> None:
    queue: asyncio.Queue[QueuedWrite] = asyncio.Queue()
    batches = Batches(queue)
    await _queue_writes(queue, 8, 0)
    await batches.next()
    await _queue_writes(queue, 2, 0)
    # Well past the longest wait: only a batch that kept waiting after a look found nobody
    # would take it.
    late = asyncio.get_running_loop().call_later(50 * GATHER_S, queue.put_nowait, _write())
    assert len(await batches.next()) == 2
    late.cancel()
