"""ChunkWriter against a host of its own, not a ChunkStore: the writer needs only the
WriterHost protocol and the chunk's two paths, and reports back to its host."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import crc32c
import pytest

from diststorage.core.errors import DataLoss
from diststorage.core.ids import new_id
from diststorage.node.capacity import CapacityLedger
from diststorage.node.chunkfile import FOOTER_SIZE
from diststorage.node.layout import ChunkPaths
from diststorage.node.writer import ChunkWriter

T = TypeVar("T")
BLOCK = b"x" * 1000


class Host:
    def __init__(self) -> None:
        self.ledger = CapacityLedger(None, disk_margin_bytes=0)
        self.finished: list[str] = []
        self.deleted: list[str] = []

    def run_io(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        return asyncio.get_running_loop().run_in_executor(None, fn)

    def disk_free_bytes(self) -> int:
        return 1 << 40

    async def delete(self, chunk_id: str) -> bool:
        self.deleted.append(chunk_id)
        return True

    def writer_finished(self, writer: ChunkWriter) -> None:
        self.finished.append(writer.chunk_id)


def open_writer(host: Host, tmp_path: Path, chunk_id: str) -> tuple[ChunkWriter, ChunkPaths]:
    paths = ChunkPaths(temp=tmp_path / f"{chunk_id}.tmp", final=tmp_path / chunk_id)
    reserved = len(BLOCK) + FOOTER_SIZE
    host.ledger.reserve(reserved, host.disk_free_bytes())
    return ChunkWriter(host, chunk_id, paths, reserved), paths


async def test_a_commit_lands_at_the_final_path_and_tells_the_host(tmp_path: Path) -> None:
    host, chunk_id = Host(), new_id()
    writer, paths = open_writer(host, tmp_path, chunk_id)
    async with writer:
        await writer.write_block(BLOCK, crc32c.crc32c(BLOCK))
        result = await writer.commit()
    assert (result.chunk_id, result.data_bytes, result.block_count) == (chunk_id, len(BLOCK), 1)
    assert paths.final.stat().st_size == result.file_bytes and not paths.temp.exists()
    assert host.finished == [chunk_id] and host.deleted == []
    assert (host.ledger.used_bytes, host.ledger.chunk_count) == (result.file_bytes, 1)
    assert host.ledger.reserved_bytes == 0


async def test_a_bad_block_aborts_and_releases_the_reservation(tmp_path: Path) -> None:
    host, chunk_id = Host(), new_id()
    writer, paths = open_writer(host, tmp_path, chunk_id)
    async with writer:
        with pytest.raises(DataLoss):
            await writer.write_block(BLOCK, crc32c.crc32c(BLOCK) ^ 1)
    assert not paths.temp.exists() and not paths.final.exists()
    assert host.finished == [chunk_id]
    assert (host.ledger.reserved_bytes, host.ledger.used_bytes) == (0, 0)
