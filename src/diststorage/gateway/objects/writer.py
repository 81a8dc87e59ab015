"""The write pipeline: stripe → encode → place → store → commit, or roll back whole.

A body is cut into stripes; each stripe is encoded into K+M blocks and block i of every stripe
in a segment streams to the node holding chunk i of that segment. At most
``write_stripes_in_flight`` stripes wait per node stream, which bounds memory whatever the
object size. The object becomes visible in one metadata transaction after every chunk has been
fsynced by its node; any failure before that deletes what was written and leaves no rows.

Degraded writes: with fewer writable nodes than shards, two shards of a segment may share a
node (last resort), and a node that fails mid-upload is dropped while enough others go on
(``RedundancyPolicy.min_write_nodes`` distinct nodes). Such segments are committed as below
target, queued for repair in the commit's own transaction.

Small objects under the default policy skip all of this: their bytes are committed inline,
with the object row, in one metadata transaction (``inline_object_bytes``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import crc32c

from diststorage.core.errors import (
    AlreadyExists,
    BodyLengthMismatch,
    DiststorageError,
    InsufficientStorage,
    NotEnoughNodes,
)
from diststorage.core.ids import new_id
from diststorage.core.policy import INLINE_POLICY, RedundancyPolicy, policy_for_width
from diststorage.core.settings import GatewaySettings
from diststorage.erasure import Codec, codec_for
from diststorage.gateway.blockwire import BlockMessage, put_block_message
from diststorage.gateway.inventory import Inventory
from diststorage.gateway.janitor import Janitor
from diststorage.gateway.nodeclient import ChunkUpload, NodeClient, NodeClients
from diststorage.meta import (
    ChunkRef,
    CommitOutcome,
    DegradedSegment,
    MetadataStore,
    NewObject,
    ObjectInfo,
    ObjectState,
    PlannedChunk,
    StoredChunk,
)
from diststorage.placement import rank_nodes

log = logging.getLogger(__name__)

# Below this, hashing on the event loop is cheaper than a hop to a thread.
INLINE_HASH_BYTES = 256 * 1024


class ByteSource(Protocol):
    async def read_up_to(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the body, b"" after it.

        Raises BodyLengthMismatch when the body ends short of its announced length, and
        ClientGone when the client disconnects.
        """
        ...


@dataclass(frozen=True, slots=True)
class PutRequest:
    namespace: str
    key: str
    content_type: str
    policy: RedundancyPolicy
    declared_size: int | None
    replace: bool
    # False when the policy came from X-Redundancy (honoured exactly), True for the default.
    default_policy: bool = False


class _OrderedMd5:
    """MD5 of the whole body, updated off the event loop one stripe at a time, in order."""

    def __init__(self) -> None:
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._pending: asyncio.Future[None] | None = None

    async def update(self, data: bytes) -> None:
        if self._pending is not None:
            await self._pending
            self._pending = None
        if len(data) < INLINE_HASH_BYTES:
            self._md5.update(data)
        else:
            self._pending = asyncio.get_running_loop().run_in_executor(None, self._md5.update, data)

    async def hexdigest(self) -> str:
        if self._pending is not None:
            await self._pending
        return self._md5.hexdigest()


def _most_telling(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error to report for a failed segment: ours before foreign ones."""
    leaves: list[BaseException] = []
    stack: list[BaseException] = [group]
    while stack:
        exc = stack.pop()
        if isinstance(exc, BaseExceptionGroup):
            stack.extend(exc.exceptions)
        else:
            leaves.append(exc)
    ours = [e for e in leaves if isinstance(e, DiststorageError)]
    return (ours or leaves)[0]


def _require_writable_nodes(policy: RedundancyPolicy, writable: int) -> None:
    if writable < policy.min_write_nodes:
        raise NotEnoughNodes(
            f"{policy.spec} needs at least {policy.min_write_nodes} writable nodes "
            f"({policy.total_shards} for full redundancy); {writable} are up"
        )


class _Stripes:
    """The body a stripe at a time, for a pipeline that must know whether more follows.

    ``take`` hands the waiting stripe over and forgets it, so no caller up the stack keeps a
    stripe alive while the ones after it are encoded.
    """

    def __init__(self, body: ByteSource, stripe_size: int) -> None:
        self._body = body
        self._stripe_size = stripe_size
        self._waiting: bytes | None = None

    async def more(self) -> bool:
        """Whether the body holds another stripe; reads it if none is waiting."""
        if self._waiting is None:
            self._waiting = await self._body.read_up_to(self._stripe_size)
        return bool(self._waiting)

    def take(self) -> bytes:
        stripe, self._waiting = self._waiting, None
        assert stripe, "take() without a stripe waiting"
        return stripe


@dataclass
class _ShardFeed:
    """Blocks queued for one chunk's stream; ``ended`` once the pump took the end marker."""

    queue: asyncio.Queue[BlockMessage | None]
    ended: bool = False


class ObjectWriter:
    def __init__(
        self,
        settings: GatewaySettings,
        store: MetadataStore,
        inventory: Inventory,
        clients: NodeClients,
        janitor: Janitor,
        gateway_id: str,
    ) -> None:
        self._settings = settings
        self._store = store
        self._inventory = inventory
        self._clients = clients
        self._janitor = janitor
        self._gateway_id = gateway_id
        self._active: dict[str, _Upload] = {}

    async def write(self, request: PutRequest, body: ByteSource) -> ObjectInfo:
        """Stores the body under the key; 2xx-worthy only once this returns.

        Raises NotEnoughNodes / InsufficientStorage / NodeUnavailable when the cluster cannot
        take it, AlreadyExists for a create over a committed key, BodyLengthMismatch or
        ClientGone for a bad body. On any error or cancellation nothing stays visible.
        """
        if self._keeps_inline(request):
            return await self._write_inline(request, body)
        writable = self._inventory.writable_count()
        if request.default_policy:
            request = dataclasses.replace(
                request, policy=policy_for_width(request.policy, writable)
            )
        self._require_wide_enough(request.policy)
        _require_writable_nodes(request.policy, writable)
        if not request.replace and await self._store.key_exists(request.namespace, request.key):
            raise AlreadyExists(f"key {request.key!r} already exists")
        upload = _Upload(self, request)
        self._active[upload.object_id] = upload
        try:
            return await upload.run(body)
        except BaseException:
            await asyncio.shield(upload.roll_back())
            raise
        finally:
            del self._active[upload.object_id]

    def _keeps_inline(self, request: PutRequest) -> bool:
        """Whether the object's bytes go into the metadata database instead of onto nodes.

        Only small objects of known size under the default policy (a policy asked for is
        honoured as asked). Their durability is then the database's, which every object
        already depends on: its layout lives there. On nodes, each such object would cost
        three fsync'd files and as many round trips for a few kilobytes.
        """
        limit = self._settings.inline_object_bytes
        declared = request.declared_size
        return request.default_policy and limit > 0 and declared is not None and declared <= limit

    async def _write_inline(self, request: PutRequest, body: ByteSource) -> ObjectInfo:
        """Reads the whole (small) body and commits it with its object in one transaction."""
        declared = request.declared_size
        assert declared is not None
        # One byte more than announced: the read ends at the body's end, which checks its length.
        data = await body.read_up_to(declared + 1)
        if len(data) != declared:
            raise BodyLengthMismatch(
                f"Content-Length announced {declared} bytes, the body had more"
            )
        new = self.new_object(request, new_id(), INLINE_POLICY)
        md5_hex = hashlib.md5(data, usedforsecurity=False).hexdigest()
        return self.committed(await self._store.commit_inline(new, data, md5_hex, request.replace))

    def new_object(self, request: PutRequest, object_id: str, policy: str) -> NewObject:
        return NewObject(
            object_id=object_id,
            namespace=request.namespace,
            key=request.key,
            content_type=request.content_type,
            policy=policy,
            stripe_size_bytes=self._settings.stripe_size_bytes,
            segment_stripes=self._settings.segment_max_stripes,
            gateway_id=self._gateway_id,
        )

    def committed(self, outcome: CommitOutcome) -> ObjectInfo:
        """The object a commit made visible; the version it replaced goes once unread."""
        if outcome.replaced is not None:
            replaced = outcome.replaced
            self._janitor.delete_after_reads(replaced.object_id, replaced.chunks)
        return outcome.info

    def _require_wide_enough(self, policy: RedundancyPolicy) -> None:
        """A policy wider than the whole cluster could never reach its target: refused, where
        a temporary lack of nodes only makes the write degraded."""
        members = self._inventory.member_count()
        if policy.total_shards > members:
            raise NotEnoughNodes(
                f"{policy.spec} needs {policy.total_shards} nodes; the cluster has {members}"
            )

    def active_uploads(self) -> list[str]:
        """Object ids of the uploads running on this gateway (garbage collection spares them)."""
        return list(self._active)

    def place(
        self,
        placement_key: str,
        policy: RedundancyPolicy,
        chunk_bytes: int,
        avoid: Collection[str] = (),
    ) -> list[str]:
        """A node for each shard: distinct nodes, best first; when too few nodes are writable,
        the shards beyond them go round again onto the same nodes (a last resort that repair
        undoes)."""
        candidates = [c for c in self._inventory.writable_candidates() if c.node_id not in avoid]
        _require_writable_nodes(policy, len(candidates))
        ranked = rank_nodes(candidates, placement_key, min_free_bytes=chunk_bytes)
        if len(ranked) < policy.min_write_nodes:
            raise InsufficientStorage(
                f"only {len(ranked)} writable nodes have {chunk_bytes} bytes free; "
                f"{policy.spec} needs at least {policy.min_write_nodes}"
            )
        return [ranked[shard % len(ranked)] for shard in range(policy.total_shards)]


class _Upload:
    """The state of one upload, so that a failure anywhere can be rolled back whole."""

    def __init__(self, writer: ObjectWriter, request: PutRequest) -> None:
        self._w = writer
        self._request = request
        self._settings = writer._settings
        self._codec: Codec = codec_for(request.policy)
        self.object_id = new_id()
        self._begun = False
        self._planned: list[PlannedChunk] = []
        self._stored: list[StoredChunk] = []
        self._dropped: list[ChunkRef] = []
        self._degraded: list[DegradedSegment] = []
        # Nodes that failed this upload get none of its later segments.
        self._avoid: set[str] = set()
        self._committed = False
        self._commit_sent = False

    def _new_object(self) -> NewObject:
        return self._w.new_object(self._request, self.object_id, self._request.policy.spec)

    async def run(self, body: ByteSource) -> ObjectInfo:
        stripes = _Stripes(body, self._settings.stripe_size_bytes)
        md5 = _OrderedMd5()
        size = 0
        segment = 0
        while await stripes.more():
            expected = self._expected_chunk_bytes(segment)
            planned = self._plan(segment, expected)
            if self._begun:
                await self._w._store.plan_chunks(self.object_id, planned)
            else:
                await self._w._store.begin_upload(self._new_object(), planned)
                self._begun = True
            self._planned.extend(planned)
            if self._is_one_stripe():
                written = await self._write_one_stripe(planned, stripes.take(), md5)
                count = 1
            else:
                written, count = await self._write_segment(planned, expected, stripes, md5)
            self._note_degraded(segment, count, planned)
            size += written
            segment += 1
        if not self._begun:
            await self._w._store.begin_upload(self._new_object(), [])
            self._begun = True
        digest = await md5.hexdigest()
        self._commit_sent = True
        outcome = await self._w._store.commit_upload(
            self.object_id,
            size,
            digest,
            self._stored,
            self._request.replace,
            dropped=self._dropped,
            degraded=self._degraded,
        )
        self._committed = True
        return self._w.committed(outcome)

    def _plan(self, segment: int, expected_chunk_bytes: int) -> list[PlannedChunk]:
        policy = self._request.policy
        # Room for what each chunk will hold; with the length unknown, for one stripe (nodes
        # reserve more as blocks arrive and answer RESOURCE_EXHAUSTED when out of room).
        chunk_bytes = expected_chunk_bytes or self._codec.block_size(
            self._settings.stripe_size_bytes
        )
        nodes = self._w.place(f"{self.object_id}/{segment}", policy, chunk_bytes, self._avoid)
        return [
            PlannedChunk(new_id(), node_id, segment, shard) for shard, node_id in enumerate(nodes)
        ]

    async def _write_segment(
        self,
        planned: Sequence[PlannedChunk],
        expected: int,
        stripes: _Stripes,
        md5: _OrderedMd5,
    ) -> tuple[int, int]:
        """Streams stripes into this segment's chunks.

        Returns the bytes taken and the stripes written. A chunk whose node fails is dropped
        while enough others carry on; its pump then only drains its feed.
        """
        depth = self._settings.write_stripes_in_flight
        feeds = [_ShardFeed(asyncio.Queue(maxsize=depth)) for _ in planned]
        failures: dict[int, DiststorageError] = {}
        crcs: list[list[int]] = [[] for _ in planned]
        sizes = [0] * len(planned)
        written = 0
        count = 0
        try:
            async with asyncio.TaskGroup() as group:
                pumps = [
                    group.create_task(self._pump_or_drain(shard, chunk, expected, feed, failures))
                    for shard, (chunk, feed) in enumerate(zip(planned, feeds, strict=True))
                ]
                for _ in range(self._settings.segment_max_stripes):
                    if not await stripes.more():
                        break
                    stripe = stripes.take()
                    await md5.update(stripe)
                    for shard, (message, crc, length) in enumerate(self._framed(stripe)):
                        crcs[shard].append(crc)
                        sizes[shard] += length
                        if shard not in failures:
                            await feeds[shard].queue.put(message)
                    self._check_tolerable(planned, failures)
                    written += len(stripe)
                    count += 1
                    # The stripe must not stay alive while the next one is read.
                    del stripe
                for feed in feeds:
                    await feed.queue.put(None)
        except BaseExceptionGroup as group_error:
            raise _most_telling(group_error) from group_error
        self._check_tolerable(planned, failures)
        kept = [shard for shard in range(len(planned)) if shard not in failures]
        for shard in kept:
            stored = pumps[shard].result()
            assert stored == sizes[shard], f"node stored {stored} bytes of {sizes[shard]}"
        self._record_stored(
            [planned[s] for s in kept], [sizes[s] for s in kept], [crcs[s] for s in kept]
        )
        self._record_dropped(planned, failures)
        return written, count

    def _framed(self, stripe: bytes) -> list[tuple[BlockMessage, int, int]]:
        """Each block of the stripe framed for its stream, with its CRC and length. Each block
        is let go once framed, so the stripe's blocks and their framed copies never coexist
        whole; only the framed copies wait in the queues."""
        blocks = self._codec.encode(stripe)
        framed: list[tuple[BlockMessage, int, int]] = []
        for shard in range(len(blocks)):
            block, blocks[shard] = blocks[shard], b""
            crc = crc32c.crc32c(block)
            framed.append((put_block_message(block, crc), crc, len(block)))
        return framed

    async def _pump_or_drain(
        self,
        shard: int,
        chunk: PlannedChunk,
        expected_bytes: int,
        feed: _ShardFeed,
        failures: dict[int, DiststorageError],
    ) -> int:
        try:
            return await self._pump(chunk, expected_bytes, feed)
        except DiststorageError as error:
            failures[shard] = error
            self._avoid.add(chunk.node_id)
            log.warning(
                "upload %s: shard %d on node %s dropped: %s",
                self.object_id,
                shard,
                chunk.node_id[:8],
                error,
            )
            # Keep taking blocks so the encoder never waits on a stream that is gone.
            while not feed.ended:
                feed.ended = await feed.queue.get() is None
            return 0

    def _check_tolerable(
        self, planned: Sequence[PlannedChunk], failures: dict[int, DiststorageError]
    ) -> None:
        """Raises the first failure once the chunks left are too few to commit."""
        if not failures:
            return
        nodes_left = {c.node_id for shard, c in enumerate(planned) if shard not in failures}
        if len(nodes_left) < self._request.policy.min_write_nodes:
            raise next(iter(failures.values()))

    def _record_dropped(
        self, planned: Sequence[PlannedChunk], failures: dict[int, DiststorageError]
    ) -> None:
        # The node may have stored the chunk after all (its answer was lost): queue it as
        # garbage at commit rather than leave it unreferenced.
        self._dropped.extend(
            ChunkRef(planned[shard].chunk_id, planned[shard].node_id) for shard in failures
        )

    def _note_degraded(self, segment: int, stripes: int, planned: Sequence[PlannedChunk]) -> None:
        dropped = {ref.chunk_id for ref in self._dropped}
        nodes = {c.node_id for c in planned if c.chunk_id not in dropped}
        if len(nodes) < self._request.policy.total_shards:
            margin = len(nodes) - self._request.policy.needed_to_read
            self._degraded.append(DegradedSegment(segment, stripes, margin))

    def _record_stored(
        self, planned: Sequence[PlannedChunk], sizes: Sequence[int], crcs: Sequence[Sequence[int]]
    ) -> None:
        for chunk, size, chunk_crcs in zip(planned, sizes, crcs, strict=True):
            self._stored.append(
                StoredChunk(
                    chunk.chunk_id,
                    chunk.node_id,
                    chunk.segment_index,
                    chunk.shard_index,
                    size,
                    tuple(chunk_crcs),
                )
            )
            self._w._inventory.note_used(chunk.node_id, size)

    def _is_one_stripe(self) -> bool:
        declared = self._request.declared_size
        return declared is not None and declared <= self._settings.stripe_size_bytes

    async def _write_one_stripe(
        self, planned: Sequence[PlannedChunk], stripe: bytes, md5: _OrderedMd5
    ) -> int:
        """A whole object in one stripe: each chunk is one block, stored in one round trip."""
        await md5.update(stripe)
        blocks = self._codec.encode(stripe)
        crcs = [crc32c.crc32c(block) for block in blocks]
        outcomes = await asyncio.gather(
            *(
                self._put_once(chunk, block, crc)
                for chunk, block, crc in zip(planned, blocks, crcs, strict=True)
            ),
            return_exceptions=True,
        )
        failures: dict[int, DiststorageError] = {}
        for shard, outcome in enumerate(outcomes):
            if isinstance(outcome, DiststorageError):
                failures[shard] = outcome
                self._avoid.add(planned[shard].node_id)
            elif isinstance(outcome, BaseException):
                raise outcome
        self._check_tolerable(planned, failures)
        kept = [shard for shard in range(len(planned)) if shard not in failures]
        self._record_stored(
            [planned[s] for s in kept], [len(blocks[s]) for s in kept], [[crcs[s]] for s in kept]
        )
        self._record_dropped(planned, failures)
        return len(stripe)

    async def _put_once(self, chunk: PlannedChunk, block: bytes, crc: int) -> None:
        response = await self._client(chunk).put_once(chunk.chunk_id, block, crc)
        assert response.size_bytes == len(block), f"node stored {response.size_bytes} bytes"

    def _client(self, chunk: PlannedChunk) -> NodeClient:
        client = self._w._clients.get(chunk.node_id)
        assert client is not None, "placed on a node the inventory does not know"
        return client

    def _expected_chunk_bytes(self, segment: int) -> int:
        """Bytes each chunk of this segment will hold, when the body's length is known."""
        declared = self._request.declared_size
        if declared is None:
            return 0
        stripe_size = self._settings.stripe_size_bytes
        first = segment * self._settings.segment_max_stripes
        last = min(first + self._settings.segment_max_stripes, -(-declared // stripe_size))
        total = 0
        for stripe in range(first, last):
            length = min(stripe_size, declared - stripe * stripe_size)
            total += self._codec.block_size(length)
        return total

    async def _pump(self, chunk: PlannedChunk, expected_bytes: int, feed: _ShardFeed) -> int:
        upload: ChunkUpload = await self._client(chunk).start_put(chunk.chunk_id, expected_bytes)
        finished = False
        try:
            while (message := await feed.queue.get()) is not None:
                await upload.send(message)
            feed.ended = True
            response = await upload.finish()
            finished = True
            return int(response.size_bytes)
        finally:
            if not finished:
                upload.cancel()

    async def roll_back(self) -> None:
        """Deletes every chunk this upload may have written and forgets its rows."""
        if self._committed or (self._commit_sent and not await self._commit_failed()):
            return
        undeleted = await self._w._janitor.delete_now(
            [ChunkRef(chunk.chunk_id, chunk.node_id) for chunk in self._planned]
        )
        if self._begun:
            try:
                await self._w._store.abort_upload(self.object_id, undeleted)
            except DiststorageError:
                log.warning(
                    "upload %s: rollback could not reach the database; GC will "
                    "collect its pending rows",
                    self.object_id,
                )
        if undeleted:
            log.warning("upload %s: %d chunks left for GC", self.object_id, len(undeleted))

    async def _commit_failed(self) -> bool:
        """After a commit whose answer was lost (timeout, cancellation): did it not happen?

        Unknown counts as "it may have happened": the chunks then stay, and the pending row,
        if any, is left for garbage collection to settle.
        """
        try:
            state = await self._w._store.upload_state(self.object_id)
        except DiststorageError:
            log.warning("upload %s: commit outcome unknown; left for GC", self.object_id)
            return False
        return state != ObjectState.COMMITTED
