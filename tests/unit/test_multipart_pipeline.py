"""Multipart uploads through the objects layer in process: real SQLite metadata, fake nodes.
Parts are written by the ordinary pipeline and read back part by part over any range; a part
uploaded again, an abort (also during a part's upload), a delete or a replace leaves no chunk
behind on any node; copies stream through the reader; the leader's expiry aborts idle
uploads in virtual time."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
from awscrt import checksums

from diststorage.core.errors import (
    InvalidPartNumber,
    NoSuchUpload,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from diststorage.core.policy import parse_policy
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.objects import DeleteOperation, PutOperation, RangeSpec
from diststorage.gateway.objects.multipart import copy_range, part_range
from diststorage.gateway.objects.ports import ByteSource, ChecksumSource
from diststorage.gateway.workers.multipart_expiry import FINISHED_KEPT_S, MultipartExpiry
from diststorage.gateway.workers.repair import RepairWorker
from diststorage.gateway.workers.throttle import TokenBucket
from diststorage.meta import (
    DEFAULT_NAMESPACE,
    NO_ATTRIBUTES,
    ListedPart,
    MetadataStore,
    StoredChecksum,
)
from diststorage.testing import BytesBody, FakeClock, Pipeline, in_memory_pipeline

NS = DEFAULT_NAMESPACE
STRIPE = 4096
MIN_PART = 3 * STRIPE
INLINE = 1024


def settings_in(tmp_path: Path) -> GatewaySettings:
    return GatewaySettings(
        data_dir=tmp_path / "gateway",
        stripe_size_bytes=STRIPE,
        segment_max_stripes=2,
        small_object_bytes=2 * STRIPE,
        inline_object_bytes=INLINE,
        redundancy="ec:4+2",
        multipart_min_part_bytes=MIN_PART,
    )


@pytest.fixture
async def pipeline(tmp_path: Path, sqlite_store: MetadataStore) -> Pipeline:
    return await in_memory_pipeline(settings_in(tmp_path), sqlite_store, 6, FakeClock())


class Crc32Body:
    """A body that computes its CRC32 as it is read, as the S3 front end's verifying body
    does: a ByteSource and a ChecksumSource."""

    def __init__(self, body: ByteSource) -> None:
        self._body = body
        self._crc = 0

    async def read_up_to(self, size: int) -> bytes:
        data = await self._body.read_up_to(size)
        self._crc = checksums.crc32(data, self._crc)
        return data

    def stored_checksum(self) -> StoredChecksum:
        return StoredChecksum("CRC32", "FULL_OBJECT", b64_crc32(self._crc))


def b64_crc32(value: int) -> str:
    return base64.b64encode(value.to_bytes(4, "big")).decode()


def wrap_crc32(algorithm: str, body: ByteSource) -> tuple[ByteSource, ChecksumSource]:
    assert algorithm == "CRC32"
    wrapped = Crc32Body(body)
    return wrapped, wrapped


class HeldBody:
    """A body that hands over ``first`` bytes, then waits for ``release`` before the rest."""

    def __init__(self, data: bytes, first: int) -> None:
        self._data = data
        self._first = first
        self._at = 0
        self.reached = asyncio.Event()
        self.release = asyncio.Event()

    async def read_up_to(self, size: int) -> bytes:
        if self._at >= self._first:
            self.reached.set()
            await self.release.wait()
        end = min(self._at + size, len(self._data))
        if self._at < self._first:
            end = min(end, self._first)
        piece = self._data[self._at : end]
        self._at = end
        return piece


async def upload(
    pipeline: Pipeline,
    parts: dict[int, bytes],
    key: str = "k",
    algorithm: str | None = None,
    kind: str | None = None,
    crc: bool = False,
) -> tuple[str, list[ListedPart]]:
    multipart = pipeline.multipart
    upload_id = await multipart.create(NS, key, "video/mp4", NO_ATTRIBUTES, algorithm, kind)
    listed = []
    for number, data in parts.items():
        body = Crc32Body(BytesBody(data))
        info = await multipart.upload_part(
            upload_id, NS, key, number, len(data), body, body if crc else None
        )
        assert info.etag == hashlib.md5(data).hexdigest()
        listed.append(ListedPart(number, f'"{info.etag}"', info.checksum))
    return upload_id, listed


async def read(
    pipeline: Pipeline, key: str, start: int | None = None, end: int | None = None
) -> bytes:
    layout = await pipeline.store.get_layout(NS, key)
    start = 0 if start is None else start
    end = layout.info.size_bytes if end is None else end
    return b"".join([p async for p in pipeline.reader.stream(layout, start, end)])


async def read_range(pipeline: Pipeline, key: str, text: str) -> bytes:
    first, _, last = text.partition("-")
    spec = RangeSpec(int(first) if first else None, int(last) if last else None, text)
    layout = await pipeline.store.get_layout(NS, key)
    byte_range = spec.resolve(layout.info.size_bytes)
    return await read(pipeline, key, byte_range.start, byte_range.end)


def multipart_etag(parts: Sequence[bytes]) -> str:
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f"{hashlib.md5(digests).hexdigest()}-{len(parts)}"


async def test_parts_1_3_7_read_back_whole_and_over_any_range(pipeline: Pipeline) -> None:
    # The last part is small enough to be kept inline in the database.
    parts = {1: os.urandom(MIN_PART + 5), 3: os.urandom(MIN_PART + STRIPE // 2), 7: b"tail"}
    upload_id, listed = await upload(pipeline, parts)
    info = await pipeline.multipart.complete(upload_id, NS, "k", listed)
    body = b"".join(parts.values())
    assert info.etag == multipart_etag(list(parts.values()))
    assert await read(pipeline, "k") == body
    layout = await pipeline.store.get_layout(NS, "k")
    assert layout.parts[2].layout.inline_body == b"tail"
    size, end_1 = len(body), len(parts[1])
    cases = {
        f"{end_1 - 1}-{end_1 - 1}": body[end_1 - 1 : end_1],  # the last byte of part 1
        f"{end_1}-{end_1}": body[end_1 : end_1 + 1],  # the first of part 2
        f"{end_1 - 3}-{size - 2}": body[end_1 - 3 : size - 1],  # across all three parts
        "-6": body[-6:],  # a suffix, over the end of part 2 and the inline part 3
        f"{size - 2}-{size + 100}": body[-2:],  # an end past the size is clamped
        f"{STRIPE + 1}-": body[STRIPE + 1 :],
    }
    for text, expected in cases.items():
        assert await read_range(pipeline, "k", text) == expected, text
    with pytest.raises(RangeNotSatisfiable):
        await read_range(pipeline, "k", f"{size}-")
    assert (await pipeline.multipart.list_uploads(NS)).uploads == ()


async def test_a_replicated_last_part_and_part_ranges(pipeline: Pipeline) -> None:
    parts = {1: os.urandom(MIN_PART), 2: os.urandom(STRIPE + 10)}  # small: replicated
    upload_id, listed = await upload(pipeline, parts)
    await pipeline.multipart.complete(upload_id, NS, "k", listed)
    layout = await pipeline.store.get_layout(NS, "k")
    assert [p.layout.info.policy for p in layout.parts] == ["ec:4+2", "replicate:3"]
    assert await read(pipeline, "k") == parts[1] + parts[2]
    second = part_range(layout, 2)
    assert (second.byte_range.start, second.byte_range.end, second.part_count) == (
        MIN_PART,
        MIN_PART + STRIPE + 10,
        2,
    )
    with pytest.raises(InvalidPartNumber):
        part_range(layout, 3)


async def test_a_part_uploaded_again_wins_and_the_old_chunks_go(pipeline: Pipeline) -> None:
    upload_id, _ = await upload(pipeline, {1: os.urandom(MIN_PART)})
    before = pipeline.nodes.chunk_ids()
    new = os.urandom(MIN_PART + 1)
    info = await pipeline.multipart.upload_part(upload_id, NS, "k", 1, len(new), BytesBody(new))
    assert before.isdisjoint(pipeline.nodes.chunk_ids())
    await pipeline.multipart.complete(upload_id, NS, "k", [ListedPart(1, info.etag)])
    assert await read(pipeline, "k") == new


async def test_abort_during_a_parts_upload_leaves_no_chunk(pipeline: Pipeline) -> None:
    upload_id, _ = await upload(pipeline, {1: os.urandom(MIN_PART)})
    data = os.urandom(4 * STRIPE)
    body = HeldBody(data, first=2 * STRIPE)
    writing = asyncio.create_task(
        pipeline.multipart.upload_part(upload_id, NS, "k", 2, len(data), body)
    )
    await body.reached.wait()
    assert pipeline.nodes.chunk_ids()  # part 2's first segment is on the nodes
    await pipeline.multipart.abort(upload_id, NS, "k")
    body.release.set()
    with pytest.raises(NoSuchUpload):
        await writing
    assert pipeline.nodes.chunk_ids() == set()
    assert pipeline.writer.active_uploads() == []
    await pipeline.multipart.abort(upload_id, NS, "k")  # again: nothing to do
    with pytest.raises(NoSuchUpload):
        await pipeline.multipart.upload_part(upload_id, NS, "k", 3, 1, BytesBody(b"x"))


async def test_deleting_or_replacing_a_multipart_object_deletes_its_parts_chunks(
    pipeline: Pipeline,
) -> None:
    upload_id, listed = await upload(pipeline, {1: os.urandom(MIN_PART), 2: os.urandom(99)})
    await pipeline.multipart.complete(upload_id, NS, "k", listed)
    await pipeline.writer.delete(DeleteOperation(NS, "k"))
    assert pipeline.nodes.chunk_ids() == set()

    upload_id, listed = await upload(pipeline, {1: os.urandom(MIN_PART), 2: os.urandom(99)})
    await pipeline.multipart.complete(upload_id, NS, "k", listed)
    data = os.urandom(3 * STRIPE)
    operation = PutOperation(NS, "k", "text/plain", parse_policy("ec:2+1"), len(data), True)
    await pipeline.writer.write(operation, BytesBody(data))
    layout = await pipeline.store.get_layout(NS, "k")
    assert pipeline.nodes.chunk_ids() == {c.chunk_id for c in layout.chunks}
    # And a Complete over a multipart object replaces it with its parts.
    upload_id, listed = await upload(pipeline, {1: os.urandom(MIN_PART)})
    first_ids = pipeline.nodes.chunk_ids()
    await pipeline.multipart.complete(upload_id, NS, "k", listed)
    assert pipeline.nodes.chunk_ids() < first_ids


async def test_composite_and_full_object_checksums(pipeline: Pipeline) -> None:
    parts = {1: os.urandom(MIN_PART), 2: os.urandom(MIN_PART + 3), 3: os.urandom(10)}
    body = b"".join(parts.values())
    crcs = [checksums.crc32(p) for p in parts.values()]

    upload_id, listed = await upload(pipeline, parts, "composite", "CRC32", None, crc=True)
    info = await pipeline.multipart.complete(upload_id, NS, "composite", listed)
    raw = b"".join(c.to_bytes(4, "big") for c in crcs)
    assert info.checksum == StoredChecksum(
        "CRC32", "COMPOSITE", f"{b64_crc32(checksums.crc32(raw))}-3"
    )

    upload_id, listed = await upload(pipeline, parts, "full", "crc32", "FULL_OBJECT", crc=True)
    info = await pipeline.multipart.complete(upload_id, NS, "full", listed)
    assert info.checksum == StoredChecksum("CRC32", "FULL_OBJECT", b64_crc32(checksums.crc32(body)))


async def test_an_upload_created_without_an_algorithm_completes_with_part_crcs(
    pipeline: Pipeline,
) -> None:
    parts = {1: os.urandom(MIN_PART), 2: os.urandom(5)}
    upload_id, listed = await upload(pipeline, parts, crc=True)
    assert all(p.checksum is not None for p in listed)
    info = await pipeline.multipart.complete(upload_id, NS, "k", listed)
    assert info.checksum is None and await read(pipeline, "k") == b"".join(parts.values())


async def test_a_part_sent_without_a_checksum_gets_its_uploads(pipeline: Pipeline) -> None:
    multipart = pipeline.multipart
    upload_id = await multipart.create(NS, "k", "text/plain", NO_ATTRIBUTES, "CRC32", None)
    data = os.urandom(100)
    part = await multipart.upload_part(upload_id, NS, "k", 1, len(data), BytesBody(data))
    assert part.checksum == StoredChecksum("CRC32", "FULL_OBJECT", b64_crc32(checksums.crc32(data)))
    info = await multipart.complete(upload_id, NS, "k", [ListedPart(1, part.etag)])
    assert info.checksum is not None and info.checksum.value.endswith("-1")


async def test_if_none_match_completes_only_where_no_object_is(pipeline: Pipeline) -> None:
    first, listed = await upload(pipeline, {1: b"one"})
    await pipeline.multipart.complete(first, NS, "k", listed, if_none_match=True)
    second, listed = await upload(pipeline, {1: b"two"})
    with pytest.raises(PreconditionFailed):
        await pipeline.multipart.complete(second, NS, "k", listed, if_none_match=True)
    assert await read(pipeline, "k") == b"one"
    # The failed Complete left the upload open: it completes unconditionally.
    await pipeline.multipart.complete(second, NS, "k", listed)
    assert await read(pipeline, "k") == b"two"


async def test_a_copied_part_streams_a_range_of_another_object(pipeline: Pipeline) -> None:
    source_parts = {1: os.urandom(MIN_PART), 2: os.urandom(2 * STRIPE)}
    upload_id, listed = await upload(pipeline, source_parts, "source")
    await pipeline.multipart.complete(upload_id, NS, "source", listed)
    source = b"".join(source_parts.values())

    target = await pipeline.multipart.create(NS, "copy", "text/plain", NO_ATTRIBUTES, "CRC32")
    start, last = MIN_PART - STRIPE, MIN_PART + STRIPE  # across the source's two parts
    first = await pipeline.multipart.upload_part_copy(
        target, NS, "copy", 1, NS, "source", RangeSpec(0, MIN_PART - 1, "0-"), wrap_crc32
    )
    second = await pipeline.multipart.upload_part_copy(
        target, NS, "copy", 2, NS, "source", RangeSpec(start, last, "x"), wrap_crc32
    )
    assert second.etag == hashlib.md5(source[start : last + 1]).hexdigest()
    assert second.checksum is not None
    listed = [ListedPart(1, first.etag), ListedPart(2, second.etag)]
    await pipeline.multipart.complete(target, NS, "copy", listed)
    assert await read(pipeline, "copy") == source[:MIN_PART] + source[start : last + 1]
    with pytest.raises(RangeNotSatisfiable):
        copy_range(RangeSpec(0, len(source), "x"), len(source))


async def test_a_damaged_chunk_of_a_part_is_repaired(pipeline: Pipeline) -> None:
    parts = {1: os.urandom(MIN_PART), 2: os.urandom(50)}
    upload_id, listed = await upload(pipeline, parts)
    await pipeline.multipart.complete(upload_id, NS, "k", listed)
    layout = await pipeline.store.get_layout(NS, "k")
    damaged = layout.parts[0].layout.chunks[0]
    node = pipeline.nodes.get(damaged.node_id)
    assert node is not None
    del node.chunks[damaged.chunk_id]  # the file is gone from its disk
    fresh = pipeline.nodes.add()  # every node holds a shard of the segment: one more
    await pipeline.nodes.announce(pipeline.inventory)
    assert await pipeline.store.maintenance.mark_chunks([damaged.chunk_id], "damaged") == 1
    repair = RepairWorker(
        pipeline.settings,
        pipeline.store.maintenance,
        pipeline.inventory,
        pipeline.chunk_sets,
        pipeline.reader,
        pipeline.nodes,
        TokenBucket(1e12),
    )
    await repair.work()
    assert repair.counters.segments_repaired == 1
    repaired = await pipeline.store.get_layout(NS, "k")
    rebuilt = {c.chunk_id: c.node_id for c in repaired.parts[0].layout.chunks}
    assert damaged.chunk_id not in rebuilt and fresh.node_id in rebuilt.values()
    assert await read(pipeline, "k") == b"".join(parts.values())


async def test_idle_uploads_expire_in_virtual_time(tmp_path: Path) -> None:
    clock = FakeClock()
    store = await MetadataStore.open(f"sqlite:///{tmp_path / 'm.db'}", 5.0, clock=clock)
    try:
        settings = settings_in(tmp_path).model_copy(update={"multipart_expiry_s": 3600.0})
        pipeline = await in_memory_pipeline(settings, store, 6, clock)
        idle, _ = await upload(pipeline, {1: os.urandom(MIN_PART)}, "idle")
        deleted: list[str] = []
        expiry = MultipartExpiry(
            3600.0,
            store.multipart,
            lambda refs: deleted.extend(r.chunk_id for r in refs),
            clock,
        )
        clock.now += 1800
        busy, listed = await upload(pipeline, {1: b"b"}, "busy")
        clock.now += 1801  # the first is idle past the expiry, the second not
        await expiry.work()
        assert expiry.uploads_expired == 1 and set(deleted) == pipeline.nodes.chunk_ids()
        with pytest.raises(NoSuchUpload):
            await pipeline.multipart.list_parts(idle, NS, "idle")
        await pipeline.multipart.complete(busy, NS, "busy", listed)
        clock.now += FINISHED_KEPT_S + 1
        await expiry.work()
        assert expiry.uploads_forgotten == 2
    finally:
        await store.close()
