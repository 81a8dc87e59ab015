"""Reads of objects completed from parts: a ranged lookup loads only the parts that hold the
range, and the reader begins the next part's fetch while the current one drains (in order,
at most two parts at once, each within its stripe bound, everything stopped on close)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from diststorage.core.settings import GatewaySettings
from diststorage.gateway.nodeclient import BlockPiece
from diststorage.gateway.objects.multipart import read_span
from diststorage.gateway.objects.operations import PutOperation, RangeSpec
from diststorage.gateway.objects.reader import NodePenalties, ObjectReader, part_spans
from diststorage.meta import (
    DEFAULT_NAMESPACE,
    NO_ATTRIBUTES,
    ListedPart,
    MetadataStore,
    ObjectLayout,
)
from diststorage.meta.layouts import covers
from diststorage.testing import BytesBody, FakeClock, FakeNode, Pipeline, in_memory_pipeline

NS = DEFAULT_NAMESPACE
STRIPE = 4096
PART_STRIPES = 6
PART = PART_STRIPES * STRIPE
PARTS = 4


def settings_in(tmp_path: Path, in_flight: int) -> GatewaySettings:
    return GatewaySettings(
        data_dir=tmp_path / "gateway",
        stripe_size_bytes=STRIPE,
        segment_max_stripes=2,
        small_object_bytes=2 * STRIPE,
        inline_object_bytes=1024,
        redundancy="ec:4+2",
        multipart_min_part_bytes=3 * STRIPE,
        read_stripes_in_flight=in_flight,
    )


async def pipeline_with(tmp_path: Path, store: MetadataStore, in_flight: int = 4) -> Pipeline:
    return await in_memory_pipeline(settings_in(tmp_path, in_flight), store, 6, FakeClock())


async def completed(pipeline: Pipeline, parts: list[bytes], key: str = "k") -> bytes:
    multipart = pipeline.multipart
    upload_id = await multipart.create(
        NS, key, "application/octet-stream", NO_ATTRIBUTES, None, None
    )
    listed = []
    for number, data in enumerate(parts, 1):
        body = BytesBody(data)
        info = await multipart.upload_part(upload_id, NS, key, number, len(data), body, None)
        listed.append(ListedPart(number, f'"{info.etag}"', info.checksum))
    await multipart.complete(upload_id, NS, key, listed)
    return b"".join(parts)


def spec_of(text: str) -> RangeSpec:
    first, _, last = text.partition("-")
    return RangeSpec(int(first) if first else None, int(last) if last else None, text)


async def read_all(reader: ObjectReader, layout: ObjectLayout, start: int, end: int) -> bytes:
    return b"".join([piece async for piece in reader.stream(layout, start, end)])


@pytest.fixture
async def pipeline(tmp_path: Path, sqlite_store: MetadataStore) -> Pipeline:
    return await pipeline_with(tmp_path, sqlite_store)


async def test_a_ranged_lookup_loads_only_the_parts_holding_the_range(pipeline: Pipeline) -> None:
    # Four parts and a small last one, kept inline.
    body = await completed(pipeline, [os.urandom(PART) for _ in range(PARTS)] + [b"tail"])
    size = len(body)
    cases = {
        f"0-{PART - 1}": [0],
        f"{PART - 1}-{PART}": [0, PART],
        f"{PART + 10}-{2 * PART + 10}": [PART, 2 * PART],
        f"{PART - 1}-{3 * PART}": [0, PART, 2 * PART, 3 * PART],
        "-6": [3 * PART, 4 * PART],
        "-2": [4 * PART],
        f"{size - 5}-{size + 100}": [3 * PART, 4 * PART],
    }
    for text, offsets in cases.items():
        spec = spec_of(text)
        layout = await pipeline.store.get_layout(NS, "k", read_span(spec))
        assert [p.offset_bytes for p in layout.parts] == offsets, text
        assert layout.info.part_count == PARTS + 1
        selected = spec.resolve(size)
        got = await read_all(pipeline.reader, layout, selected.start, selected.end)
        assert got == body[selected.start : selected.end], text
    whole = await pipeline.store.get_layout(NS, "k", read_span(None))
    assert len(whole.parts) == PARTS + 1
    assert await read_all(pipeline.reader, whole, 0, size) == body
    # A range that misses the object loads no part; the read answers 416 from the size.
    missed = await pipeline.store.get_layout(NS, "k", read_span(spec_of(f"{size}-")))
    assert missed.parts == ()
    assert len((await pipeline.store.get_layout(NS, "k")).parts) == PARTS + 1


async def test_reading_past_the_parts_a_lookup_loaded_is_refused(pipeline: Pipeline) -> None:
    await completed(pipeline, [os.urandom(PART) for _ in range(PARTS)])
    layout = await pipeline.store.get_layout(NS, "k", read_span(spec_of(f"{PART}-{PART + 5}")))
    assert [p.offset_bytes for p in layout.parts] == [PART]
    with pytest.raises(ValueError, match="no part holds bytes"):
        await read_all(pipeline.reader, layout, PART, 2 * PART + 1)
    with pytest.raises(ValueError, match="no part holds bytes 0-"):
        await read_all(pipeline.reader, layout, 0, PART + 5)


async def test_covers_needs_the_parts_to_hold_every_byte_without_a_gap(
    pipeline: Pipeline,
) -> None:
    await completed(pipeline, [os.urandom(PART) for _ in range(3)] + [b"tail"])
    parts = (await pipeline.store.get_layout(NS, "k")).parts
    end = 3 * PART + 4
    assert covers(parts, 0, end)
    assert covers(parts, 5, PART + 2)
    assert covers(parts, 7, 7)  # nothing asked, nothing needed
    assert covers((), 3, 3)
    assert not covers((), 0, 1)  # the object was dropped between the two statements
    assert not covers(parts[1:], 5, PART + 2)
    assert not covers(parts[:2], 5, 2 * PART + 1)
    assert not covers((parts[0], parts[2]), 5, 2 * PART + 1)
    spans = [(lo, hi) for _, lo, hi in part_spans(parts, 5, end - 2)]
    assert spans == [(5, PART), (0, PART), (0, PART), (0, 2)]


@dataclass
class CountingNodes:
    """The nodes' clients, counting the blocks each chunk's reads hand out."""

    nodes: dict[str, FakeNode]
    served: dict[str, int] = field(default_factory=dict)

    def get(self, node_id: str) -> CountingNode | None:
        node = self.nodes.get(node_id)
        return None if node is None else CountingNode(node, self.served)


@dataclass
class CountingNode:
    node: FakeNode
    served: dict[str, int]

    async def read(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]:
        async for piece in self.node.read(chunk_id, offset, length, wait_for_ready, patience):
            self.served[chunk_id] = self.served.get(chunk_id, 0) + 1
            yield piece

    def read_once(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]:
        return self.read(chunk_id, offset, length, wait_for_ready, patience)


def counting_reader(pipeline: Pipeline) -> tuple[ObjectReader, CountingNodes]:
    nodes = pipeline.nodes
    counting = CountingNodes(dict(nodes.nodes))
    reader = ObjectReader(
        pipeline.settings, pipeline.inventory, counting, NodePenalties(pipeline.clock),
        pipeline.damage,
    )  # fmt: skip
    return reader, counting


def blocks_of_part(layout: ObjectLayout, index: int, served: dict[str, int]) -> int:
    return sum(served.get(c.chunk_id, 0) for c in layout.parts[index].layout.chunks)


async def let_run() -> None:
    for _ in range(200):
        await asyncio.sleep(0)


async def test_the_next_part_is_fetched_while_the_current_drains_within_bounds(
    tmp_path: Path, sqlite_store: MetadataStore
) -> None:
    pipeline = await pipeline_with(tmp_path, sqlite_store, in_flight=1)
    body = await completed(pipeline, [os.urandom(PART) for _ in range(PARTS)])
    layout = await pipeline.store.get_layout(NS, "k")
    reader, counting = counting_reader(pipeline)
    stream = reader.stream(layout, 0, len(body))
    got = [await anext(stream)]  # the first stripe of part 1
    await let_run()  # the consumer stalls in part 1
    # Part 2 has begun, within one stripe queued and one held at the queue (4 data shards
    # each); part 3 waits for part 2 to become the current one.
    assert 0 < blocks_of_part(layout, 1, counting.served) <= 2 * 4
    assert blocks_of_part(layout, 2, counting.served) == 0
    assert blocks_of_part(layout, 0, counting.served) <= 3 * 4
    got += [piece async for piece in stream]
    assert b"".join(got) == body  # in order, every part once
    assert all(blocks_of_part(layout, i, counting.served) == PART_STRIPES * 4 for i in range(PARTS))


async def test_closing_a_read_stops_both_parts_fetches(
    tmp_path: Path, sqlite_store: MetadataStore
) -> None:
    pipeline = await pipeline_with(tmp_path, sqlite_store, in_flight=1)
    body = await completed(pipeline, [os.urandom(PART) for _ in range(PARTS)])
    layout = await pipeline.store.get_layout(NS, "k")
    before = asyncio.all_tasks()
    stream = pipeline.reader.stream(layout, 0, len(body))
    pieces = [await anext(stream)]
    while sum(map(len, pieces)) <= PART:  # into part 2
        pieces.append(await anext(stream))
    assert b"".join(pieces) == body[: len(b"".join(pieces))]
    await let_run()
    assert len(asyncio.all_tasks() - before) == 2  # part 2's fetch and part 3's, begun
    close = getattr(stream, "aclose")  # noqa: B009 - the protocol type has no aclose
    await close()
    assert asyncio.all_tasks() - before == set()


@pytest.mark.parametrize("in_flight", [1, 3])
async def test_a_stalled_download_holds_no_more_than_its_stripes_in_flight(
    tmp_path: Path, sqlite_store: MetadataStore, in_flight: int
) -> None:
    """The per-request bound of a download, whatever the object's size: with the consumer
    stalled, the reader has fetched at most ``read_stripes_in_flight`` stripes queued, one
    waiting at the queue and one being read (4 data shards each), then waits."""
    pipeline = await pipeline_with(tmp_path, sqlite_store, in_flight=in_flight)
    body = os.urandom(40 * STRIPE)
    operation = PutOperation(NS, "big", "application/octet-stream", None, len(body), True)
    await pipeline.writer.write(operation, BytesBody(body), None)
    layout = await pipeline.store.get_layout(NS, "big")
    reader, counting = counting_reader(pipeline)
    stream = reader.stream(layout, 0, len(body))
    got = [await anext(stream)]
    await let_run()  # the consumer stalls
    held = sum(counting.served.values())
    assert 4 <= held <= (in_flight + 2) * 4
    await let_run()
    assert sum(counting.served.values()) == held, "the reader went on without its consumer"
    got += [piece async for piece in stream]
    assert b"".join(got) == body
    assert sum(counting.served.values()) == 40 * 4
