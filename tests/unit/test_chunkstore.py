"""ChunkStore on a real temporary directory: format, integrity, capacity, cancellation."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import crc32c
import pytest

from diststorage.core.errors import (
    AlreadyExists,
    ChunkNotFound,
    DataLoss,
    InsufficientStorage,
    InvalidRequest,
)
from diststorage.core.ids import new_id
from diststorage.node import ChunkStore
from diststorage.node.chunkfile import ENTRY_SIZE, FOOTER_SIZE
from diststorage.node.layout import DiskSpace
from diststorage.node.reader import BlockSlice
from diststorage.node.writer import CommitResult

CHUNK = "0123456789abcdef0123456789abcdef"
SIZES = (1000, 1, 4096, 0, 777)


def make_blocks(*sizes: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(size) for size in sizes]


async def put(store: ChunkStore, chunk_id: str, blocks: list[bytes]) -> CommitResult:
    writer = await store.open_writer(chunk_id, sum(map(len, blocks)))
    async with writer:
        for block in blocks:
            await writer.write_block(block, crc32c.crc32c(block))
        return await writer.commit()


async def read(
    store: ChunkStore, chunk_id: str, offset: int = 0, length: int = 0
) -> list[BlockSlice]:
    return [piece async for piece in store.read(chunk_id, offset, length)]


def temp_files(store: ChunkStore) -> list[str]:
    return os.listdir(store.layout.tmp_dir)


def file_size_of(blocks: list[bytes]) -> int:
    return sum(map(len, blocks)) + ENTRY_SIZE * len(blocks) + FOOTER_SIZE


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ChunkStore]:
    async with await ChunkStore.open(tmp_path / "data") as store:
        yield store


def _boundary_ranges() -> list[tuple[int, int]]:
    ends = [sum(SIZES[: i + 1]) for i in range(len(SIZES))]
    total = ends[-1]
    ranges = {(0, 0), (0, total), (total, 0)}
    for boundary in ends[:-1]:
        for offset in (boundary - 1, boundary, boundary + 1):
            for length in (0, 1, 2, 1001, total - offset):
                if 0 < length <= total - offset or length == 0:
                    ranges.add((offset, length))
    return sorted(ranges)


@pytest.mark.parametrize(("offset", "length"), _boundary_ranges())
async def test_range_reads_return_exactly_the_range(
    store: ChunkStore, offset: int, length: int
) -> None:
    blocks = make_blocks(*SIZES)
    result = await put(store, CHUNK, blocks)
    data = b"".join(blocks)
    assert (result.data_bytes, result.block_count) == (len(data), len(blocks))

    pieces = await read(store, CHUNK, offset, length)

    end = len(data) if length == 0 else offset + length
    assert b"".join(p.data for p in pieces) == data[offset:end]
    starts = [sum(SIZES[:i]) for i in range(len(SIZES))]
    position = offset
    for piece in pieces:
        assert piece.offset == position and piece.data
        position += len(piece.data)
        index = max(i for i, start in enumerate(starts) if start <= piece.offset and SIZES[i])
        assert piece.block_crc32c == crc32c.crc32c(blocks[index])
        assert piece.whole_block == (piece.data == blocks[index])
    overlapping = [
        i for i, s in enumerate(starts) if SIZES[i] and s < end and s + SIZES[i] > offset
    ]
    assert len(pieces) == len(overlapping)


async def test_whole_chunk_read_yields_every_nonempty_block_whole(store: ChunkStore) -> None:
    blocks = make_blocks(*SIZES)
    await put(store, CHUNK, blocks)
    pieces = await read(store, CHUNK)
    assert [p.data for p in pieces] == [b for b in blocks if b]
    assert all(p.whole_block for p in pieces)


async def test_corrupt_byte_fails_its_block_only(store: ChunkStore) -> None:
    blocks = make_blocks(100, 200, 300)
    await put(store, CHUNK, blocks)
    path = store.layout.chunk_path(CHUNK)
    raw = bytearray(path.read_bytes())
    raw[100 + 50] ^= 0x01  # one bit inside the second block
    path.write_bytes(bytes(raw))

    assert [p.data for p in await read(store, CHUNK, 0, 100)] == [blocks[0]]
    assert [p.data for p in await read(store, CHUNK, 300, 300)] == [blocks[2]]
    received: list[bytes] = []
    with pytest.raises(DataLoss):
        async for piece in store.read(CHUNK):
            received.append(piece.data)
    assert received == [blocks[0]]  # nothing of the damaged block was yielded
    with pytest.raises(DataLoss):
        await read(store, CHUNK, 150, 1)


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda raw: raw[:-1], id="last-byte-cut"),
        pytest.param(lambda raw: raw[: len(raw) // 2], id="cut-in-half"),
        pytest.param(lambda raw: raw[:5], id="shorter-than-footer"),
        pytest.param(lambda raw: b"", id="empty"),
        pytest.param(lambda raw: raw[:-8] + b"XXXXXXXX", id="bad-magic"),
        pytest.param(lambda raw: b"\0" + raw, id="extra-byte"),
        pytest.param(lambda raw: raw[:-12] + b"\xff\xff\xff\xff" + raw[-8:], id="huge-count"),
    ],
)
async def test_damaged_trailer_is_data_loss(
    store: ChunkStore, damage: Callable[[bytes], bytes]
) -> None:
    await put(store, CHUNK, make_blocks(100, 200))
    path = store.layout.chunk_path(CHUNK)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(DataLoss):
        await read(store, CHUNK)


async def test_bad_crc_on_write_is_data_loss_and_leaves_nothing(store: ChunkStore) -> None:
    good, bad = make_blocks(10, 20)
    writer = await store.open_writer(CHUNK, 30)
    await writer.write_block(good, crc32c.crc32c(good))
    with pytest.raises(DataLoss):
        await writer.write_block(bad, crc32c.crc32c(bad) ^ 1)
    assert temp_files(store) == []
    assert not store.layout.chunk_path(CHUNK).exists()
    assert store.ledger.reserved_bytes == 0 and store.ledger.pending_written_bytes == 0
    await put(store, CHUNK, [good])  # the id is free again


async def test_reservation_beyond_capacity_is_refused(tmp_path: Path) -> None:
    async with await ChunkStore.open(tmp_path, capacity_bytes=10_000) as store:
        with pytest.raises(InsufficientStorage):
            await store.open_writer(CHUNK, 10_000)
        assert temp_files(store) == [] and store.ledger.reserved_bytes == 0
        assert (await store.stat()).free_bytes == 10_000


async def test_writes_beyond_capacity_are_refused_and_leave_nothing(tmp_path: Path) -> None:
    async with await ChunkStore.open(tmp_path, capacity_bytes=10_000) as store:
        block = make_blocks(4000)[0]
        writer = await store.open_writer(CHUNK, 100)  # announces less than it sends
        await writer.write_block(block, crc32c.crc32c(block))
        await writer.write_block(block, crc32c.crc32c(block))
        with pytest.raises(InsufficientStorage):
            await writer.write_block(block, crc32c.crc32c(block))
        assert temp_files(store) == [] and not store.layout.chunk_path(CHUNK).exists()
        assert store.ledger.reserved_bytes == 0 and store.used_bytes == 0
        assert (await store.stat()).free_bytes == 10_000


async def test_reservations_and_commits_shrink_free_bytes(tmp_path: Path) -> None:
    async with await ChunkStore.open(tmp_path, capacity_bytes=10_000) as store:
        writer = await store.open_writer(CHUNK, 3000)
        assert (await store.stat()).free_bytes == 10_000 - 3000 - FOOTER_SIZE
        with pytest.raises(InsufficientStorage):
            await store.open_writer(new_id(), 7000)
        await writer.abort()
        blocks = make_blocks(3000)
        await put(store, CHUNK, blocks)
        status = await store.stat()
        assert status.used_bytes == file_size_of(blocks) == 10_000 - status.free_bytes


async def test_disk_free_space_limits_writes(tmp_path: Path) -> None:
    disk_free = 1 << 30
    margin = 64 << 20

    def disk_space(path: Path) -> DiskSpace:
        return DiskSpace(total_bytes=1 << 40, free_bytes=disk_free)

    async with await ChunkStore.open(
        tmp_path, disk_space=disk_space, disk_margin_bytes=margin
    ) as store:
        assert (await store.stat()).free_bytes == disk_free - margin
        block = make_blocks(1000)[0]
        writer = await store.open_writer(CHUNK, 0)
        await writer.write_block(block, crc32c.crc32c(block))
        disk_free = margin + 1000  # the disk filled up meanwhile
        with pytest.raises(InsufficientStorage):
            await writer.write_block(block, crc32c.crc32c(block))
        assert temp_files(store) == []
        with pytest.raises(InsufficientStorage):
            await store.open_writer(new_id(), 1000)
        assert (await store.stat()).free_bytes == 1000


async def test_abort_leaves_no_temp_file(store: ChunkStore) -> None:
    block = make_blocks(5000)[0]
    writer = await store.open_writer(CHUNK, 10_000)
    await writer.write_block(block, crc32c.crc32c(block))
    assert temp_files(store) == [f"{CHUNK}.tmp"]
    await writer.abort()
    await writer.abort()  # idempotent
    assert temp_files(store) == [] and store.ledger.reserved_bytes == 0
    with pytest.raises(ChunkNotFound):
        await read(store, CHUNK)


async def test_leaving_the_writer_block_without_commit_aborts(store: ChunkStore) -> None:
    block = make_blocks(10)[0]
    async with await store.open_writer(CHUNK, 10) as writer:
        await writer.write_block(block, crc32c.crc32c(block))
    assert temp_files(store) == [] and store.ledger.reserved_bytes == 0
    assert await store.list() == ([], False)


async def test_cancelled_write_leaves_nothing(store: ChunkStore) -> None:
    block = make_blocks(8 << 20)[0]
    writer = await store.open_writer(CHUNK, len(block))
    task = asyncio.create_task(writer.write_block(block, crc32c.crc32c(block)))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert temp_files(store) == []
    assert store.ledger.reserved_bytes == 0 and store.ledger.pending_written_bytes == 0


async def test_commit_cancelled_after_it_started_deletes_the_chunk(
    store: ChunkStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="diststorage.node.writer")
    block = make_blocks(100)[0]
    writer = await store.open_writer(CHUNK, 100)
    await writer.write_block(block, crc32c.crc32c(block))
    task = asyncio.create_task(writer.commit())
    await asyncio.sleep(0)  # the commit is now running in a thread
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert "committed, but its caller was cancelled" in caplog.text  # the rename had landed
    assert await store.list() == ([], False)
    assert (store.used_bytes, store.chunk_count, store.ledger.reserved_bytes) == (0, 0, 0)
    assert temp_files(store) == []


async def test_existing_or_in_progress_chunk_id_is_refused(store: ChunkStore) -> None:
    await put(store, CHUNK, make_blocks(10))
    with pytest.raises(AlreadyExists):
        await store.open_writer(CHUNK, 10)
    other = new_id()
    async with await store.open_writer(other, 10):
        with pytest.raises(AlreadyExists):
            await store.open_writer(other, 10)


async def test_identity_persists_across_reopen(tmp_path: Path) -> None:
    async with await ChunkStore.open(tmp_path) as store:
        node_id = store.node_id
    assert json.loads((tmp_path / "node.json").read_text()) == {"node_id": node_id}
    async with await ChunkStore.open(tmp_path) as store:
        assert store.node_id == node_id


async def test_a_second_store_on_the_same_directory_is_refused(store: ChunkStore) -> None:
    with pytest.raises(RuntimeError, match="in use"):
        await ChunkStore.open(store.layout.root)


async def test_damaged_identity_is_data_loss(tmp_path: Path) -> None:
    (tmp_path / "node.json").write_text('{"node_id": "../../etc"}')
    with pytest.raises(DataLoss):
        await ChunkStore.open(tmp_path)
    (tmp_path / "node.json").write_text("{")
    with pytest.raises(DataLoss):
        await ChunkStore.open(tmp_path)


BAD_IDS = ["../x", "../" + "a" * 29, "A" * 32, "a" * 31, "a" * 33, "", "g" * 32, "a" * 31 + "/"]


@pytest.mark.parametrize("chunk_id", BAD_IDS)
async def test_invalid_chunk_ids_are_refused(store: ChunkStore, chunk_id: str) -> None:
    with pytest.raises(InvalidRequest):
        await store.open_writer(chunk_id, 1)
    with pytest.raises(InvalidRequest):
        await store.open_reader(chunk_id)
    with pytest.raises(InvalidRequest):
        await store.delete(chunk_id)
    if chunk_id:
        with pytest.raises(InvalidRequest):
            await store.list(after=chunk_id)


async def test_usage_is_recounted_on_reopen_and_stale_temp_files_removed(tmp_path: Path) -> None:
    chunks = {new_id(): make_blocks(100 * i, 7, seed=i) for i in range(1, 4)}
    async with await ChunkStore.open(tmp_path) as store:
        for chunk_id, blocks in chunks.items():
            await put(store, chunk_id, blocks)
        used = store.used_bytes
    assert used == sum(file_size_of(blocks) for blocks in chunks.values())
    (tmp_path / "tmp" / f"{new_id()}.tmp").write_bytes(b"left by a crash")
    async with await ChunkStore.open(tmp_path) as store:
        assert (store.used_bytes, store.chunk_count) == (used, 3)
        assert temp_files(store) == []


async def test_delete(store: ChunkStore) -> None:
    blocks = make_blocks(10, 20)
    await put(store, CHUNK, blocks)
    assert (store.used_bytes, store.chunk_count) == (file_size_of(blocks), 1)
    assert await store.delete(CHUNK) is True
    assert await store.delete(CHUNK) is False
    assert (store.used_bytes, store.chunk_count) == (0, 0)
    with pytest.raises(ChunkNotFound):
        await read(store, CHUNK)


async def test_missing_chunk_and_range_past_the_end(store: ChunkStore) -> None:
    with pytest.raises(ChunkNotFound):
        await read(store, CHUNK)
    await put(store, CHUNK, make_blocks(10, 10))
    for offset, length in ((21, 0), (20, 1), (0, 21), (19, 2)):
        with pytest.raises(InvalidRequest):
            await read(store, CHUNK, offset, length)
    assert await read(store, CHUNK, 20, 0) == []


async def test_list_pages_through_all_chunks_in_id_order(store: ChunkStore) -> None:
    sizes = {new_id(): i for i in range(1, 26)}
    for chunk_id, size in sizes.items():
        await put(store, chunk_id, make_blocks(size))
    seen: list[str] = []
    truncated_flags: list[bool] = []
    after = ""
    while True:
        page, truncated = await store.list(after=after, limit=10)
        truncated_flags.append(truncated)
        for info in page:
            assert info.size_bytes == sizes[info.chunk_id]
            assert abs(info.mtime - os.stat(store.layout.chunk_path(info.chunk_id)).st_mtime) < 1
        seen.extend(info.chunk_id for info in page)
        if not truncated:
            break
        after = page[-1].chunk_id
    assert seen == sorted(sizes)
    assert truncated_flags == [True, True, False]
    with pytest.raises(InvalidRequest):
        await store.list(limit=0)
