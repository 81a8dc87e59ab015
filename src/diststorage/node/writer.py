"""Streaming one chunk into the store: temp file, then trailer, fsync, rename, directory fsync."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypeVar

import crc32c

from diststorage.core.durable import fsync_dir
from diststorage.core.errors import DataLoss, InsufficientStorage, InvalidRequest, Unavailable
from diststorage.core.filemodes import open_private_file
from diststorage.node.capacity import CapacityLedger
from diststorage.node.chunkfile import ENTRY_SIZE, FOOTER_SIZE, MAX_BLOCK_BYTES, encode_trailer
from diststorage.node.layout import ChunkPaths
from diststorage.node.writeback import start_writeback

log = logging.getLogger(__name__)

T = TypeVar("T")
_State = Literal["open", "committing", "committed", "aborted"]


@dataclass(frozen=True, slots=True)
class CommitResult:
    chunk_id: str
    data_bytes: int
    block_count: int
    file_bytes: int


class WriterHost(Protocol):
    """What a writer needs from the store that opened it (ChunkStore is one)."""

    @property
    def ledger(self) -> CapacityLedger:
        """Where the writer accounts for what it reserves, writes, commits or releases."""

    def run_io(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        """Runs blocking file I/O off the event loop."""

    def disk_free_bytes(self) -> int:
        """Free bytes on the disk now; blocks, so called from the I/O threads only."""

    async def delete(self, chunk_id: str) -> bool:
        """Removes a committed chunk (one whose caller was cancelled before it heard so)."""

    def writer_finished(self, writer: ChunkWriter) -> None:
        """The writer committed or aborted: its chunk id is free again."""


class ChunkWriter:
    """Writes one chunk; nothing of it is visible until ``commit`` returns.

    Obtained from ``ChunkStore.open_writer``, which reserved the announced size. Calls must not
    overlap (await each before the next). Use it as ``async with writer:`` so that leaving the
    block without a commit aborts it.

    Raises, from ``write_block``: DataLoss (the block does not match its CRC), InvalidRequest
    (block above MAX_BLOCK_BYTES), InsufficientStorage (over capacity or disk). Any exception from
    ``write_block`` or ``commit`` -- cancellation included -- aborts the writer before it
    propagates: the temp file is gone and the reservation released. If ``commit`` is cancelled
    after the rename already happened, the chunk is deleted again, because whoever cancelled was
    never told it was stored.
    """

    def __init__(
        self, store: WriterHost, chunk_id: str, paths: ChunkPaths, reserved_bytes: int
    ) -> None:
        self.chunk_id = chunk_id
        self._store = store
        self._temp_path = paths.temp
        self._final_path = paths.final
        # Opened by the first I/O call, so that opening a writer creates nothing to clean up.
        self._file: IO[bytes] | None = None
        self._reserved_bytes = reserved_bytes
        self._file_bytes = FOOTER_SIZE  # what the file will weigh if committed now
        self._written_bytes = 0  # data bytes actually in the temp file
        self._blocks: list[tuple[int, int]] = []
        self._state: _State = "open"
        self._inflight: asyncio.Future[Any] | None = None
        self._commit_task: asyncio.Task[CommitResult] | None = None
        self._cleanup: asyncio.Task[None] | None = None

    @property
    def written_bytes(self) -> int:
        return self._written_bytes

    async def __aenter__(self) -> ChunkWriter:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.abort()

    async def write_block(self, data: bytes | memoryview, crc: int) -> None:
        self._expect_state("open")
        async with self._abort_on_error():
            if len(data) > MAX_BLOCK_BYTES:
                raise InvalidRequest(f"block of {len(data)} bytes exceeds {MAX_BLOCK_BYTES}")
            needed = len(data) + ENTRY_SIZE
            shortfall = self._file_bytes + needed - self._reserved_bytes
            if shortfall > 0:
                self._store.ledger.grow(shortfall)
                self._reserved_bytes += shortfall
            await self._run(partial(self._write_sync, data, crc, needed))
            if self._state != "open":
                raise Unavailable(f"chunk store closed while chunk {self.chunk_id} was written")
            self._file_bytes += needed
            self._written_bytes += len(data)
            self._store.ledger.wrote(len(data))
            self._blocks.append((len(data), crc))

    async def commit(self) -> CommitResult:
        """Makes the chunk durable and visible; returns once it is both."""
        self._expect_state("open")
        self._state = "committing"
        # A task, so that the rename and the accounting after it finish together even if the
        # caller is cancelled half-way; the cleanup then sees a consistent "committed".
        self._commit_task = asyncio.create_task(self._commit())
        async with self._abort_on_error():
            return await asyncio.shield(self._commit_task)

    async def abort(self) -> None:
        """Drops the chunk being written; idempotent.

        Waits for a commit in progress; if that commit succeeds, the chunk stays (its caller
        is told it was stored).
        """
        await self._abort(delete_if_committed=False)

    async def _abort(self, *, delete_if_committed: bool) -> None:
        if self._state == "committed" and self._cleanup is None and not delete_if_committed:
            return
        if self._cleanup is None:
            self._cleanup = asyncio.create_task(self._discard(delete_if_committed))
        # Shielded: a second cancellation must not leave the temp file or the reservation behind.
        await asyncio.shield(self._cleanup)

    async def _commit(self) -> CommitResult:
        trailer = encode_trailer(self._blocks)
        await self._store.run_io(partial(self._commit_sync, trailer))
        self._store.ledger.committed(self._reserved_bytes, self._written_bytes, self._file_bytes)
        self._state = "committed"
        self._store.writer_finished(self)
        return CommitResult(self.chunk_id, self._written_bytes, len(self._blocks), self._file_bytes)

    async def _discard(self, delete_if_committed: bool) -> None:
        for pending in (self._inflight, self._commit_task):
            if pending is not None:
                # The thread cannot be interrupted; wait until it stops touching the file.
                await asyncio.wait([pending])
                if not pending.cancelled():
                    pending.exception()  # retrieved here; the caller already got its own error
        if self._state == "committed":
            if not delete_if_committed:
                return
            log.info("chunk %s: committed, but its caller was cancelled; deleting", self.chunk_id)
            await self._store.delete(self.chunk_id)
            return
        self._state = "aborted"
        self._store.ledger.release(self._reserved_bytes, self._written_bytes)
        try:
            await self._store.run_io(self._remove_temp_sync)
        finally:
            self._store.writer_finished(self)

    @contextlib.asynccontextmanager
    async def _abort_on_error(self) -> AsyncIterator[None]:
        try:
            yield
        except BaseException as exc:
            # Only our own caller's cancellation means "nobody will hear about this commit".
            await self._abort(delete_if_committed=isinstance(exc, asyncio.CancelledError))
            raise

    async def _run(self, fn: Callable[[], T]) -> T:
        future = self._store.run_io(fn)
        self._inflight = future
        return await asyncio.shield(future)

    def _expect_state(self, state: _State) -> None:
        if self._state != state:
            raise RuntimeError(f"chunk writer for {self.chunk_id} is {self._state}, not {state}")

    # Blocking parts, run in the store's I/O threads.

    def _open_file(self) -> IO[bytes]:
        if self._file is None:
            fd = open_private_file(self._temp_path, os.O_WRONLY | os.O_TRUNC)
            self._file = open(fd, "wb")  # noqa: SIM115 - closed by commit/abort
        return self._file

    def _write_sync(self, data: bytes | memoryview, crc: int, needed: int) -> None:
        if crc32c.crc32c(data) != crc:
            raise DataLoss(f"block {len(self._blocks)} of chunk {self.chunk_id} fails its CRC")
        disk_room = self._store.disk_free_bytes() - self._store.ledger.disk_margin_bytes
        if needed > disk_room:
            raise InsufficientStorage(f"disk has {max(disk_room, 0)} bytes left, {needed} needed")
        file = self._open_file()
        file.write(data)
        file.flush()
        start_writeback(file.fileno())

    def _commit_sync(self, trailer: bytes) -> None:
        file = self._open_file()
        file.write(trailer)
        file.flush()
        os.fsync(file.fileno())
        file.close()
        os.rename(self._temp_path, self._final_path)
        try:
            fsync_dir(self._final_path.parent)
        except BaseException:
            # Not durable, so not committed: nobody may have read it yet as a stored chunk.
            _unlink(self._final_path)
            raise

    def _remove_temp_sync(self) -> None:
        if self._file is not None:
            self._file.close()
        _unlink(self._temp_path)


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
