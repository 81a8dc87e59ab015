"""ChunkStore: a node's chunks as files under one data directory.

Durability: a chunk is visible only after its file and directory entry were fsynced. Integrity:
every block carries a CRC-32C that is checked when it arrives and again on every read. Blocking
file I/O runs in the store's own thread pool, so the event loop stays free for heartbeats and
other streams, and a burst of fsyncs cannot starve the small status calls that use the default
pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

from diststorage.core.errors import AlreadyExists, InvalidRequest
from diststorage.node.capacity import DEFAULT_DISK_MARGIN_BYTES, CapacityLedger
from diststorage.node.chunkfile import FOOTER_SIZE
from diststorage.node.layout import (
    ChunkListing,
    DataLayout,
    DiskSpace,
    check_chunk_id,
    measure_disk_space,
)
from diststorage.node.reader import BlockSlice, ChunkReader, open_reader
from diststorage.node.writer import ChunkWriter

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 10_000
DEFAULT_IO_THREADS = 16


@dataclass(frozen=True, slots=True)
class StoreStatus:
    node_id: str
    capacity_bytes: int
    """The configured capacity, or the disk's size when none is configured."""
    used_bytes: int
    chunk_count: int
    free_bytes: int
    reserved_bytes: int


class ChunkStore:
    """Open with ``await ChunkStore.open(data_dir, ...)``; close with ``await store.close()``.

    Every method that takes a chunk id raises InvalidRequest unless it is 32 lowercase hex digits.
    """

    def __init__(
        self,
        layout: DataLayout,
        node_id: str,
        ledger: CapacityLedger,
        io_threads: int,
        disk_space: Callable[[Path], DiskSpace],
    ) -> None:
        self.layout = layout
        self.node_id = node_id
        self.ledger = ledger
        self._disk_space = disk_space
        self._executor = ThreadPoolExecutor(io_threads, thread_name_prefix="chunkstore")
        self._writing: set[str] = set()
        self._writers: set[ChunkWriter] = set()
        self._closed = False

    @classmethod
    async def open(
        cls,
        data_dir: Path,
        *,
        capacity_bytes: int | None = None,
        disk_margin_bytes: int = DEFAULT_DISK_MARGIN_BYTES,
        io_threads: int = DEFAULT_IO_THREADS,
        disk_space: Callable[[Path], DiskSpace] = measure_disk_space,
    ) -> ChunkStore:
        """Takes ownership of data_dir: lock, identity, stale temp files removed, usage counted.

        Raises RuntimeError if another process holds data_dir, DataLoss if node.json is damaged.
        ``disk_space`` measures the disk holding data_dir (a seam for tests).
        """
        layout = DataLayout(data_dir)
        await asyncio.to_thread(layout.prepare)
        try:
            node_id = await asyncio.to_thread(layout.load_or_create_node_id)
            scan = await asyncio.to_thread(layout.scan)
        except BaseException:
            layout.release()
            raise
        log.info(
            "chunk store %s: node %s, %d chunks, %d bytes used, %d stale temp files removed",
            data_dir,
            node_id,
            scan.chunk_count,
            scan.used_bytes,
            scan.removed_temp_files,
        )
        ledger = CapacityLedger(
            capacity_bytes,
            used_bytes=scan.used_bytes,
            chunk_count=scan.chunk_count,
            disk_margin_bytes=disk_margin_bytes,
        )
        return cls(layout, node_id, ledger, io_threads, disk_space)

    async def __aenter__(self) -> ChunkStore:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def used_bytes(self) -> int:
        return self.ledger.used_bytes

    @property
    def chunk_count(self) -> int:
        return self.ledger.chunk_count

    async def open_writer(self, chunk_id: str, expected_bytes: int) -> ChunkWriter:
        """Reserves room for expected_bytes of data and returns a writer (see ChunkWriter).

        Raises AlreadyExists if the chunk is stored or being written, InsufficientStorage if
        the reservation does not fit. Nothing is created on disk until the first write.
        """
        self._check_open()
        paths = self.layout.chunk_paths(chunk_id)
        if expected_bytes < 0:
            raise InvalidRequest("expected_bytes must not be negative")
        if chunk_id in self._writing:
            raise AlreadyExists(f"chunk {chunk_id} is being written")
        self._writing.add(chunk_id)
        try:
            exists, disk_free = await self.run_io(partial(self._probe_sync, paths.final))
            if exists:
                raise AlreadyExists(f"chunk {chunk_id} already exists")
            reserved = self.ledger.reserve(expected_bytes + FOOTER_SIZE, disk_free)
        except BaseException:
            self._writing.discard(chunk_id)
            raise
        writer = ChunkWriter(self, chunk_id, paths, reserved)
        self._writers.add(writer)
        return writer

    async def open_reader(self, chunk_id: str) -> ChunkReader:
        """Raises ChunkNotFound, or DataLoss if the chunk's trailer is damaged or truncated."""
        self._check_open()
        return await open_reader(chunk_id, self.layout.chunk_path(chunk_id), self.run_io)

    async def read(
        self, chunk_id: str, offset: int = 0, length: int = 0
    ) -> AsyncIterator[BlockSlice]:
        """Opens, reads (see ChunkReader.read) and closes; errors as open_reader and read."""
        async with await self.open_reader(chunk_id) as reader:
            async for piece in reader.read(offset, length):
                yield piece

    async def delete(self, chunk_id: str) -> bool:
        """Removes a committed chunk; returns whether it existed. Survives caller cancellation."""
        self._check_open()
        path = self.layout.chunk_path(chunk_id)
        # The unlink and the accounting after it finish together even if the caller gives up.
        task = asyncio.create_task(self._delete(path))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_log_failure)
            raise

    async def list(self, after: str = "", limit: int = DEFAULT_LIST_LIMIT) -> ChunkListing:
        """Committed chunks with ids greater than after, in id order; at most min(limit, 10000).

        Returns (chunks, truncated), truncated meaning more chunks follow the last one returned.
        """
        self._check_open()
        if after:
            check_chunk_id(after)
        if limit < 1:
            raise InvalidRequest("limit must be at least 1")
        return await self.run_io(
            partial(self.layout.list_chunks, after, min(limit, MAX_LIST_LIMIT))
        )

    async def stat(self) -> StoreStatus:
        # Default pool on purpose: heartbeats must not queue behind fsyncs in the I/O pool.
        disk = await asyncio.to_thread(self._disk_space, self.layout.root)
        capacity = self.ledger.capacity_bytes
        return StoreStatus(
            node_id=self.node_id,
            capacity_bytes=disk.total_bytes if capacity is None else capacity,
            used_bytes=self.ledger.used_bytes,
            chunk_count=self.ledger.chunk_count,
            free_bytes=self.ledger.free_bytes(disk.free_bytes),
            reserved_bytes=self.ledger.reserved_bytes,
        )

    async def close(self) -> None:
        """Aborts writers still open, waits for I/O in flight, releases the data directory."""
        if self._closed:
            return
        self._closed = True
        writers = list(self._writers)
        if writers:
            log.info("closing chunk store: aborting %d unfinished writes", len(writers))
        await asyncio.gather(*(writer.abort() for writer in writers), return_exceptions=True)
        await asyncio.to_thread(self._executor.shutdown)
        self.layout.release()

    # What a ChunkWriter needs from its store (writer.WriterHost); run_io serves the scrubber too.

    def run_io(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def disk_free_bytes(self) -> int:
        return self._disk_space(self.layout.root).free_bytes

    def writer_finished(self, writer: ChunkWriter) -> None:
        self._writers.discard(writer)
        self._writing.discard(writer.chunk_id)

    # Internals.

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("chunk store is closed")

    def _probe_sync(self, final_path: Path) -> tuple[bool, int]:
        return final_path.exists(), self.disk_free_bytes()

    async def _delete(self, path: Path) -> bool:
        size = await self.run_io(partial(_unlink_sync, path))
        if size is None:
            return False
        self.ledger.removed(size)
        return True


def _unlink_sync(path: Path) -> int | None:
    """Size of the file removed, or None if there was none."""
    try:
        size = os.stat(path).st_size
        os.unlink(path)
    except FileNotFoundError:
        return None
    # No directory fsync: a delete lost in a crash is found again by garbage collection.
    return size


def _log_failure(task: asyncio.Task[bool]) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        if (exc := task.exception()) is not None:
            log.error("delete finished after its caller left, and failed: %r", exc)
