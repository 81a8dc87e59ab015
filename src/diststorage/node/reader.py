"""Reading a committed chunk: every block is checked against its CRC before any byte leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import crc32c

from diststorage.core.errors import ChunkNotFound, DataLoss
from diststorage.node.chunkfile import BlockEntry, ChunkIndex, read_index

log = logging.getLogger(__name__)

RunIO = Callable[[Callable[[], Any]], "asyncio.Future[Any]"]


@dataclass(frozen=True, slots=True)
class BlockSlice:
    data: bytes
    offset: int
    """Where ``data`` starts within the chunk's data."""
    block_crc32c: int
    """CRC-32C of the whole block ``data`` was cut from."""
    whole_block: bool
    """``data`` is the entire block, so ``block_crc32c`` covers exactly it."""


class ChunkReader:
    """An open, indexed chunk. Keeps its file open, so a concurrent delete does not cut it off.

    Use as ``async with await store.open_reader(chunk_id) as reader``.
    """

    def __init__(self, chunk_id: str, fd: int, index: ChunkIndex, run_io: RunIO) -> None:
        self.chunk_id = chunk_id
        self._fd: int | None = fd
        self._index = index
        self._run_io = run_io
        self._inflight: asyncio.Future[Any] | None = None

    @property
    def data_bytes(self) -> int:
        return self._index.data_bytes

    @property
    def block_count(self) -> int:
        return len(self._index.blocks)

    @property
    def blocks(self) -> tuple[BlockEntry, ...]:
        return self._index.blocks

    async def __aenter__(self) -> ChunkReader:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def read(self, offset: int = 0, length: int = 0) -> AsyncGenerator[BlockSlice, None]:
        """One slice per block overlapping [offset, offset+length); length 0 = to the end.

        Raises InvalidRequest (range past the end) before yielding anything, and DataLoss for a
        block that fails its CRC, instead of yielding any of that block's bytes.
        """
        blocks = self._index.overlapping(offset, length)
        end = self._index.data_bytes if length == 0 else offset + length
        for block in blocks:
            data = await self.read_block(block)
            start, stop = max(offset, block.offset), min(end, block.end)
            whole = start == block.offset and stop == block.end
            if not whole:
                data = data[start - block.offset : stop - block.offset]
            yield BlockSlice(data, start, block.crc32c, whole)

    async def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        if self._inflight is not None:
            # Closing under a running pread could let it read a recycled descriptor.
            await asyncio.wait([self._inflight])
        os.close(fd)

    async def read_block(self, block: BlockEntry) -> bytes:
        """One whole block of this chunk (one of ``blocks``), checked against its CRC.

        Raises DataLoss if the block fails its CRC or the file ends inside it.
        """
        if self._fd is None:
            raise RuntimeError(f"reader of chunk {self.chunk_id} is closed")
        future = self._run_io(partial(self._read_block_sync, self._fd, block))
        self._inflight = future
        data: bytes = await asyncio.shield(future)
        return data

    def _read_block_sync(self, fd: int, block: BlockEntry) -> bytes:
        data = os.pread(fd, block.length, block.offset)
        if len(data) != block.length or crc32c.crc32c(data) != block.crc32c:
            log.error("chunk %s: block at offset %d fails its CRC", self.chunk_id, block.offset)
            raise DataLoss(f"chunk {self.chunk_id}: block at {block.offset} fails its checksum")
        return data


async def open_reader(chunk_id: str, path: str | os.PathLike[str], run_io: RunIO) -> ChunkReader:
    future = run_io(partial(_open_sync, path, chunk_id))
    try:
        fd, index = await asyncio.shield(future)
    except asyncio.CancelledError:
        # The thread may still succeed; close what it opens rather than leak a descriptor.
        future.add_done_callback(_close_opened)
        raise
    return ChunkReader(chunk_id, fd, index, run_io)


def _open_sync(path: str | os.PathLike[str], chunk_id: str) -> tuple[int, ChunkIndex]:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError as exc:
        raise ChunkNotFound(f"no chunk {chunk_id}") from exc
    try:
        index = read_index(fd, os.fstat(fd).st_size)
    except DataLoss as exc:
        os.close(fd)
        log.error("chunk %s: %s", chunk_id, exc.message)
        raise DataLoss(f"chunk {chunk_id}: {exc.message}") from exc
    except BaseException:
        os.close(fd)
        raise
    return fd, index


def _close_opened(future: asyncio.Future[tuple[int, ChunkIndex]]) -> None:
    if not future.cancelled() and future.exception() is None:
        with contextlib.suppress(OSError):
            os.close(future.result()[0])
