"""The read pipeline: lookup → fetch → verify → decode → stream.

For each segment the reader opens one GetChunk stream per shard it needs (data shards first,
shards on live and well-behaved nodes before others) covering just the stripes asked for; a
single block is fetched with one unary GetChunkOnce instead. Every
block is checked against the digest recorded in the metadata at commit (meta/digests.py; the
CRC for chunks written before digests were recorded); a block that is missing, corrupt,
forged or later than the block deadline retires its stream, and a stream from another shard
takes over from that stripe on. Decoded stripes queue up to ``read_stripes_in_flight`` ahead
of the HTTP response, which bounds memory. A stripe read from its data shards is never copied
on the way: its pieces are views into the messages its blocks came in, handed to the response
as they are.

Small objects kept inline come with their layout from the database and are verified whole.
An object completed from multipart parts is its parts read in order, each as above, the next
part's fetch begun while the current one drains.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from diststorage.core.clock import Clock
from diststorage.core.errors import ChunkNotFound, DataLoss, DiststorageError, NodeUnavailable
from diststorage.core.policy import parse_policy
from diststorage.core.settings import GatewaySettings
from diststorage.erasure import Block, Codec, codec_for
from diststorage.gateway.confirmations import block_fault
from diststorage.gateway.datapath import NodeStats
from diststorage.gateway.nodeclient import BlockPiece
from diststorage.gateway.objects.geometry import Geometry
from diststorage.gateway.objects.ports import (
    DamageSink,
    NodeReaders,
    NodeStates,
    Penalties,
    ReadFaults,
    SegmentLayouts,
)
from diststorage.meta import (
    ChunkState,
    NodeLiveness,
    ObjectLayout,
    PartLayout,
    StoredChunk,
)

log = logging.getLogger(__name__)

# The deadline of a last-resort second try at a late node, as a multiple of the block deadline.
PATIENT_READ_FACTOR = 4.0

# A node that failed a read is tried last for this long, so one hung node costs one deadline
# per penalty period rather than one per request.
PENALTY_S = 30.0

Piece: TypeAlias = bytes | memoryview
"""Some of an object's bytes, in order: a view into a received block, or bytes of its own."""

# What the fetcher hands the response: a stripe's verified pieces, the error that ended it, or
# None at the end.
_Pieces = asyncio.Queue[Sequence[Piece] | BaseException | None]


def inline_bytes(layout: ObjectLayout, start: int, end: int) -> bytes:
    """The bytes [start, end) of an object kept inline, once its whole body matches the MD5
    recorded at commit. There is no other copy to fall back on: a mismatch is DataLoss."""
    body = layout.inline_body
    assert body is not None, "not an inline object"
    if hashlib.md5(body, usedforsecurity=False).hexdigest() != layout.info.md5_hex:
        log.error("object %s: its inline body fails its MD5", layout.info.object_id)
        raise DataLoss(f"the stored bytes of {layout.info.key!r} fail their checksum")
    return body[start:end]


def span(pieces: Sequence[Piece], lo: int, hi: int) -> list[Piece]:
    """The bytes [lo, hi) of the pieces laid end to end, as views (no copy)."""
    out: list[Piece] = []
    position = 0
    for piece in pieces:
        size = len(piece)
        start, stop = max(lo - position, 0), min(hi - position, size)
        if start < stop:
            out.append(piece if (start, stop) == (0, size) else memoryview(piece)[start:stop])
        position += size
    return out


async def _inline_pieces(layout: ObjectLayout, start: int, end: int) -> AsyncIterator[Piece]:
    if end > start:
        yield inline_bytes(layout, start, end)


class NodePenalties:
    """Nodes that failed a read lately, tried last until their penalty runs out."""

    def __init__(self, clock: Clock) -> None:
        self._until: dict[str, float] = {}
        self._clock = clock

    def penalize(self, node_id: str) -> None:
        self._until[node_id] = self._clock.monotonic() + PENALTY_S

    def is_penalized(self, node_id: str) -> bool:
        return self._until.get(node_id, 0.0) > self._clock.monotonic()


@dataclass(frozen=True, slots=True)
class ShardSources:
    """What a segment fetcher reads from, and whom it tells about nodes and chunks that fail."""

    clients: NodeReaders
    nodes: NodeStates
    penalties: Penalties
    damage: DamageSink
    faults: ReadFaults = field(default_factory=NodeStats)
    layouts: SegmentLayouts | None = None
    """Where a shard moved since the read began is found (None: the layout read is final)."""

    def order(self, chunks: dict[int, StoredChunk]) -> list[StoredChunk]:
        """Shards to try, best first: up, unpenalized nodes, then suspect ones, then the
        rest; data shards before parity. Chunks known to be damaged come last of all: most
        of their blocks may still be sound, and every block is verified anyway."""

        def rank(chunk: StoredChunk) -> tuple[int, int]:
            if chunk.state == ChunkState.DAMAGED:
                return (3, chunk.shard_index)
            if self.penalties.is_penalized(chunk.node_id):
                return (2, chunk.shard_index)
            state = self.nodes.state(chunk.node_id)
            return (0 if state == NodeLiveness.UP else 1, chunk.shard_index)

        return sorted(chunks.values(), key=rank)


@dataclass
class _ShardStream:
    chunk: StoredChunk
    blocks: AsyncIterator[BlockPiece]

    async def next_block(self) -> Block:
        piece = await anext(self.blocks, None)
        if piece is None:
            raise DataLoss(f"chunk {self.chunk.chunk_id[:8]} ended early")
        if not piece.whole_block:
            raise DataLoss(f"chunk {self.chunk.chunk_id[:8]} sent a partial block")
        return piece.data

    async def close(self) -> None:
        close = getattr(self.blocks, "aclose", None)
        if close is not None:
            await close()


def part_spans(
    parts: Sequence[PartLayout], start: int, end: int
) -> list[tuple[ObjectLayout, int, int]]:
    """Each part overlapping [start, end) with the bytes of it to read, in order. The parts
    may be only those a ranged lookup loaded; ValueError if they leave a gap in the range,
    which would otherwise send a short body."""
    spans: list[tuple[ObjectLayout, int, int]] = []
    position = start
    for part in parts:
        lo, hi = max(start, part.offset_bytes), min(end, part.end_bytes)
        if lo >= hi:
            continue
        if lo != position:
            raise ValueError(f"no part holds bytes {position}-{lo - 1} of the layout")
        spans.append((part.layout, lo - part.offset_bytes, hi - part.offset_bytes))
        position = hi
    if position < end:
        raise ValueError(f"no part holds bytes {position}-{end - 1} of the layout")
    return spans


@dataclass
class _Fetch:
    """One object's (or part's) fetch, begun: its producer fills the queue before anyone
    reads from it."""

    queue: _Pieces
    producer: asyncio.Task[None]

    async def pieces(self) -> AsyncIterator[Piece]:
        while (stripe := await self.queue.get()) is not None:
            if isinstance(stripe, BaseException):
                raise stripe
            for piece in stripe:
                yield piece
        await self.producer

    async def close(self) -> None:
        self.producer.cancel()
        await asyncio.gather(self.producer, return_exceptions=True)


class ObjectReader:
    def __init__(
        self,
        settings: GatewaySettings,
        nodes: NodeStates,
        clients: NodeReaders,
        penalties: Penalties,
        damage: DamageSink,
        faults: ReadFaults | None = None,
        layouts: SegmentLayouts | None = None,
    ) -> None:
        self._settings = settings
        faults = faults if faults is not None else NodeStats()
        self._sources = ShardSources(clients, nodes, penalties, damage, faults, layouts)

    def stream(self, layout: ObjectLayout, start: int, end: int) -> AsyncIterator[Piece]:
        """Yields the verified bytes [start, end) of the object, in order.

        An object completed from parts is read a part at a time, each part overlapping the
        range as an object of its own (its own geometry and policy, or its inline body), the
        next part's fetch overlapping the current one's end, so memory stays two parts'
        stripes in flight. Raises DataLoss (or NodeUnavailable) when
        some stripe cannot be rebuilt; bytes already yielded were correct. Cancelling the
        consumer stops every fetch. An inline object's bytes come whole, once verified.
        """
        if layout.info.part_count:
            return self._stream_parts(layout.parts, start, end)
        if layout.inline_body is not None:
            return _inline_pieces(layout, start, end)
        return self._stream_one(layout, start, end)

    async def _stream_parts(
        self, parts: Sequence[PartLayout], start: int, end: int
    ) -> AsyncIterator[Piece]:
        """The parts overlapping [start, end), in order. Once the current part has sent its
        first piece, the next part's fetch starts too, so its first stripes are ready when the
        current one drains (no pipeline bubble at each boundary); at most two parts are being
        fetched, each with at most ``read_stripes_in_flight`` decoded stripes queued."""
        spans = part_spans(parts, start, end)
        current: _Fetch | None = None
        upcoming: _Fetch | None = None
        try:
            for index, span in enumerate(spans):
                current, upcoming = upcoming or self._begin(*span), None
                async for piece in current.pieces():
                    if upcoming is None and index + 1 < len(spans):
                        upcoming = self._begin(*spans[index + 1])
                    yield piece
                await current.close()
        finally:
            for fetch in (current, upcoming):
                if fetch is not None:
                    await fetch.close()

    async def _stream_one(
        self, layout: ObjectLayout, start: int, end: int
    ) -> AsyncGenerator[Piece, None]:
        fetch = self._begin(layout, start, end)
        try:
            async for piece in fetch.pieces():
                yield piece
        finally:
            await fetch.close()

    def _begin(self, layout: ObjectLayout, start: int, end: int) -> _Fetch:
        """Starts fetching the bytes [start, end) of a single object (or part) at once."""
        queue: _Pieces = asyncio.Queue(self._settings.read_stripes_in_flight)
        producer = asyncio.get_running_loop().create_task(self._produce(layout, start, end, queue))
        return _Fetch(queue, producer)

    async def _produce(self, layout: ObjectLayout, start: int, end: int, queue: _Pieces) -> None:
        """Fills the queue with verified pieces, then None; a failure goes in as the error."""
        try:
            if layout.inline_body is not None:
                if end > start:
                    await queue.put([inline_bytes(layout, start, end)])
            else:
                await self._fetch(layout, start, end, queue)
        except Exception as error:
            await queue.put(error)
            return
        await queue.put(None)

    async def _fetch(self, layout: ObjectLayout, start: int, end: int, queue: _Pieces) -> None:
        info = layout.info
        geometry = Geometry(info.size_bytes, info.stripe_size_bytes, info.segment_stripes)
        codec = codec_for(parse_policy(info.policy))
        stripes = geometry.stripes_for(start, end)
        by_segment: dict[int, dict[int, StoredChunk]] = {}
        for chunk in layout.chunks:
            by_segment.setdefault(chunk.segment_index, {})[chunk.shard_index] = chunk
        segment = -1
        fetcher: SegmentFetcher | None = None
        try:
            for stripe in stripes:
                if geometry.segment_of(stripe) != segment:
                    if fetcher is not None:
                        await fetcher.close()
                    segment = geometry.segment_of(stripe)
                    fetcher = self.segment_fetcher(
                        codec,
                        geometry,
                        segment,
                        by_segment.get(segment, {}),
                        last_stripe=min(stripes[-1], geometry.segment_stripe_range(segment)[-1]),
                        object_id=info.object_id,
                    )
                assert fetcher is not None
                pieces = await fetcher.stripe(stripe)
                stripe_start = stripe * info.stripe_size_bytes
                await queue.put(span(pieces, start - stripe_start, end - stripe_start))
        finally:
            if fetcher is not None:
                await fetcher.close()

    def segment_fetcher(
        self,
        codec: Codec,
        geometry: Geometry,
        segment: int,
        chunks: dict[int, StoredChunk],
        last_stripe: int,
        object_id: str | None = None,
    ) -> SegmentFetcher:
        """A fetcher of the segment's stripes up to ``last_stripe`` (repair reads with it too);
        with ``object_id``, it looks up where a shard went if its chunk is gone meanwhile."""
        return SegmentFetcher(
            self._sources, codec, geometry, segment, chunks, last_stripe, object_id
        )


def _unreadable(stripe: int, failures: list[BaseException]) -> DiststorageError:
    """Why a stripe could not be read: too few nodes answered (try again later), or shards
    are damaged or gone (data loss, unless repair or a returning node brings them back)."""
    reasons = "; ".join(str(f) for f in failures[-3:])
    if failures and all(isinstance(f, NodeUnavailable | TimeoutError) for f in failures):
        return NodeUnavailable(f"stripe {stripe}: too few nodes answered: {reasons}")
    return DataLoss(f"stripe {stripe} cannot be rebuilt: {reasons}")


class SegmentFetcher:
    """Fetches the stripes of one segment, switching shards when one fails.

    Used for downloads and by repair, which rebuilds lost shards from the stripes it gets.
    """

    def __init__(
        self,
        sources: ShardSources,
        codec: Codec,
        geometry: Geometry,
        segment: int,
        chunks: dict[int, StoredChunk],
        last_stripe: int,
        object_id: str | None = None,
    ) -> None:
        self._sources = sources
        self._object_id = object_id
        self._segment = segment
        self._known = {chunk.chunk_id for chunk in chunks.values()}
        # A shard's chunk was not on its node: it may have moved (repair, a drain) since the
        # layout was read, and the segment's chunks are looked up again before giving up.
        self._moved = False
        self._codec = codec
        self._geometry = geometry
        self._first_stripe = geometry.segment_stripe_range(segment)[0]
        self._last_stripe = last_stripe
        self._full_block = codec.block_size(geometry.stripe_size_bytes)
        self._untried = sources.order(chunks)
        self._active: list[_ShardStream] = []
        self._needed = codec.policy.needed_to_read
        # Shards dropped for being late, and the stripe each was last given a patient try at.
        self._late: list[StoredChunk] = []
        self._patient_at: dict[int, int] = {}
        self._degraded = False

    async def stripe(self, stripe: int) -> list[memoryview]:
        """The stripe's verified bytes, in order, as ``Codec.decode`` gives them."""
        blocks: dict[int, Block] = {}
        failures: list[BaseException] = []
        while len(blocks) < self._needed:
            self._open_streams(stripe, self._needed - len(blocks) - len(self._pending(blocks)))
            pending = self._pending(blocks)
            if not pending and await self._find_moved_shards(blocks):
                self._open_streams(stripe, self._needed - len(blocks))
                pending = self._pending(blocks)
            if not pending:
                # Nothing else left to try: a node that was merely slow (an overloaded machine)
                # gets another chance, with a longer deadline, before the read fails; again
                # later in the segment only if it got further meanwhile, so a hung node costs
                # one patient deadline and no more.
                again = [c for c in self._late if self._patient_at.get(c.shard_index) != stripe]
                self._late = [c for c in self._late if c not in again]
                self._patient_at.update((c.shard_index, stripe) for c in again)
                self._untried = again + self._untried
                self._open_streams(stripe, self._needed - len(blocks))
                pending = self._pending(blocks)
            if not pending:
                raise _unreadable(stripe, failures)
            results = await asyncio.gather(
                *(self._verified_block(s, stripe) for s in pending), return_exceptions=True
            )
            for shard_stream, result in zip(pending, results, strict=True):
                if isinstance(result, bytes | memoryview):
                    blocks[shard_stream.chunk.shard_index] = result
                elif isinstance(result, DiststorageError | TimeoutError):
                    failures.append(result)
                    await self._retire(shard_stream, result)
                else:
                    raise result
        if not self._degraded and any(index >= self._needed for index in blocks):
            self._degraded = True  # counted once per segment read
            self._sources.faults.degraded_read()
        return self._codec.decode(blocks, self._geometry.stripe_length(stripe))

    async def _find_moved_shards(self, blocks: dict[int, Block]) -> bool:
        """After a shard's chunk was missing, the segment's chunks as they are now: those not
        seen before (a shard rebuilt or moved elsewhere meanwhile, its old chunk deleted, as
        repair does on the leader while another gateway reads) are tried next. Whether any
        was new."""
        layouts = self._sources.layouts
        if not self._moved or layouts is None or self._object_id is None:
            return False
        self._moved = False
        layout = await layouts.segment_layout(self._object_id, self._segment)
        if layout is None:
            return False
        reading = {s.chunk.shard_index for s in self._active} | set(blocks)
        fresh = [
            chunk
            for chunk in layout.chunks
            if chunk.chunk_id not in self._known and chunk.shard_index not in reading
        ]
        self._known.update(chunk.chunk_id for chunk in fresh)
        self._untried = self._sources.order({c.shard_index: c for c in fresh}) + self._untried
        return bool(fresh)

    def _pending(self, blocks: dict[int, Block]) -> list[_ShardStream]:
        return [s for s in self._active if s.chunk.shard_index not in blocks]

    def _open_streams(self, stripe: int, count: int) -> None:
        while count > 0 and self._untried:
            chunk = self._untried.pop(0)
            client = self._sources.clients.get(chunk.node_id)
            if client is None:
                continue
            offset = (stripe - self._first_stripe) * self._full_block
            length = sum(
                self._codec.block_size(self._geometry.stripe_length(s))
                for s in range(stripe, self._last_stripe + 1)
            )
            up = self._sources.nodes.is_up(chunk.node_id)
            patience = PATIENT_READ_FACTOR if chunk.shard_index in self._patient_at else 1.0
            # One block left to fetch (a small object, the end of a range): one round trip.
            read = client.read_once if stripe == self._last_stripe else client.read
            blocks = read(chunk.chunk_id, offset, length, wait_for_ready=up, patience=patience)
            self._active.append(_ShardStream(chunk, blocks))
            count -= 1

    async def _verified_block(self, shard_stream: _ShardStream, stripe: int) -> Block:
        """The stream's next block, once it is the block committed there.

        A chunk with digests is held to them: its node cannot forge a block, whatever CRC it
        sends. A chunk written before digests were recorded has only its CRCs, which catch
        bit rot but not a forger.
        """
        data = await shard_stream.next_block()
        chunk = shard_stream.chunk
        fault = block_fault(chunk, stripe - self._first_stripe, data)
        if fault is not None:
            raise DataLoss(f"chunk {chunk.chunk_id[:8]} (stripe {stripe}): {fault}")
        return data

    async def _retire(self, shard_stream: _ShardStream, reason: BaseException) -> None:
        self._active.remove(shard_stream)
        node_id = shard_stream.chunk.node_id
        if isinstance(reason, NodeUnavailable | TimeoutError):
            self._sources.penalties.penalize(node_id)
            self._late.append(shard_stream.chunk)
        elif isinstance(reason, DataLoss | ChunkNotFound) and (
            shard_stream.chunk.state != ChunkState.DAMAGED
        ):
            self._sources.damage.report(shard_stream.chunk.chunk_id)
        if isinstance(reason, ChunkNotFound):
            self._moved = True
        if isinstance(reason, DataLoss):
            self._sources.faults.crc_error(node_id)
        log.warning(
            "shard %d on node %s dropped from read: %s",
            shard_stream.chunk.shard_index,
            node_id[:8],
            reason,
        )
        await shard_stream.close()

    async def close(self) -> None:
        for shard_stream in self._active:
            await shard_stream.close()
        self._active.clear()
