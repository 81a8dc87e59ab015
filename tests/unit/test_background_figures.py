"""The damage reporter and the SQLite writer as workers: what one unit does, and the figures
their status lines show."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from sqlalchemy import text
from sqlalchemy.orm import Session

from diststorage.core.ids import new_id
from diststorage.core.worker import WorkerState
from diststorage.gateway.damage import FLUSH_INTERVAL_S, MAX_PENDING_REPORTS, DamageReports
from diststorage.meta import MetadataStore
from diststorage.meta.backends import SqliteBackend, open_backend
from diststorage.meta.group_commit import MAX_BATCH, WRITE_QUEUE_BOUND


async def test_damage_reports_go_out_in_one_batch_per_unit(store: MetadataStore) -> None:
    damage = DamageReports(store.maintenance)
    idle = await damage.work()
    assert (idle.state, idle.wait_s) == (WorkerState.IDLE, FLUSH_INTERVAL_S)

    for chunk_id in (new_id(), new_id(), new_id()):
        damage.report(chunk_id)
    assert damage.status() == {"queued": 3, "sent": 0, "dropped": 0}
    assert (await damage.work()).state == WorkerState.BUSY
    assert damage.status() == {"queued": 0, "sent": 3, "dropped": 0}


async def test_damage_reports_past_the_bound_are_dropped(store: MetadataStore) -> None:
    damage = DamageReports(store.maintenance)
    for _ in range(MAX_PENDING_REPORTS + 2):
        damage.report(new_id())
    assert damage.status() == {"queued": MAX_PENDING_REPORTS, "sent": 0, "dropped": 2}


async def test_the_sqlite_writer_reports_its_queue_and_bound(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite:///{tmp_path / 'm.db'}", 10)
    assert isinstance(backend, SqliteBackend)
    opened = MetadataStore(backend, 10)
    await backend.migrate()
    try:
        assert backend.workers.statuses() == [], "started by the first write"
        await opened.maintenance.acquire_lease("workers", "a", 60.0)
        (writer,) = backend.workers.statuses()
        assert writer.name == "sqlite-writer"
        assert writer.figures["bound"] == WRITE_QUEUE_BOUND
        assert writer.figures["queued"] == 0 and writer.figures["commits"] == 1
    finally:
        await opened.close()


async def test_writes_past_the_queue_bound_wait_for_room_and_none_is_lost(tmp_path: Path) -> None:
    backend = open_backend(f"sqlite:///{tmp_path / 'm.db'}", 10)
    assert isinstance(backend, SqliteBackend)
    await backend.migrate()
    release = threading.Event()
    # The writer thread is held, as by a slow disk: its first batch cannot commit.
    held = asyncio.get_running_loop().run_in_executor(backend._writer, release.wait)

    def one(session: Session) -> int:
        return int(session.execute(text("SELECT 1")).scalar_one())

    callers = MAX_BATCH + WRITE_QUEUE_BOUND + 5
    writes = [asyncio.ensure_future(backend.write(one)) for _ in range(callers)]
    try:
        for _ in range(50):
            await asyncio.sleep(0.01)
        (writer,) = backend.workers.statuses()
        assert writer.figures["queued"] == WRITE_QUEUE_BOUND, "the queue holds its bound"
        assert not any(write.done() for write in writes), "the rest wait for room"
    finally:
        release.set()
        await held
    assert await asyncio.gather(*writes) == [1] * callers
    await backend.close()
