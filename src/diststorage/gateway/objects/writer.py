"""The write pipeline: stripe → encode → place → store → commit, or roll back whole.

A body is cut into stripes; each stripe is encoded into K+M blocks and block i of every stripe
in a segment streams to the node holding chunk i of that segment. At most
``write_stripes_in_flight`` stripes wait per node stream, which bounds memory whatever the
object size. The object becomes visible in one metadata transaction after every chunk has been
fsynced by its node; any failure before that deletes what was written and leaves no rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import crc32c

from diststorage.core.errors import (
    AlreadyExists,
    DiststorageError,
    InsufficientStorage,
    NotEnoughNodes,
)
from diststorage.core.ids import new_id
from diststorage.core.policy import RedundancyPolicy
from diststorage.core.settings import GatewaySettings
from diststorage.erasure import Codec, codec_for
from diststorage.gateway.inventory import Inventory
from diststorage.gateway.janitor import Janitor
from diststorage.gateway.nodeclient import ChunkUpload, NodeClient, NodeClients
from diststorage.meta import (
    ChunkRef,
    MetadataStore,
    NewObject,
    ObjectInfo,
    PlannedChunk,
    StoredChunk,
)
from diststorage.meta.models import COMMITTED
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


def _require_live_nodes(policy: RedundancyPolicy, live: int) -> None:
    if live < policy.total_shards:
        raise NotEnoughNodes(
            f"{policy.spec} needs {policy.total_shards} live nodes, {live} are live"
        )


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

    async def write(self, request: PutRequest, body: ByteSource) -> ObjectInfo:
        """Stores the body under the key; 2xx-worthy only once this returns.

        Raises NotEnoughNodes / InsufficientStorage / NodeUnavailable when the cluster cannot
        take it, AlreadyExists for a create over a committed key, BodyLengthMismatch or
        ClientGone for a bad body. On any error or cancellation nothing stays visible.
        """
        _require_live_nodes(request.policy, self._inventory.live_count())
        if not request.replace and await self._store.key_exists(request.namespace, request.key):
            raise AlreadyExists(f"key {request.key!r} already exists")
        upload = _Upload(self, request)
        try:
            return await upload.run(body)
        except BaseException:
            await asyncio.shield(upload.roll_back())
            raise

    def place(self, placement_key: str, policy: RedundancyPolicy, chunk_bytes: int) -> list[str]:
        candidates = self._inventory.live_candidates()
        _require_live_nodes(policy, len(candidates))
        ranked = rank_nodes(candidates, placement_key, min_free_bytes=chunk_bytes)
        if len(ranked) < policy.total_shards:
            raise InsufficientStorage(
                f"only {len(ranked)} live nodes have {chunk_bytes} bytes free; "
                f"{policy.spec} needs {policy.total_shards}"
            )
        return ranked[: policy.total_shards]


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
        self._committed = False
        self._commit_sent = False

    def _new_object(self) -> NewObject:
        return NewObject(
            object_id=self.object_id,
            namespace=self._request.namespace,
            key=self._request.key,
            content_type=self._request.content_type,
            policy=self._request.policy.spec,
            stripe_size_bytes=self._settings.stripe_size_bytes,
            segment_stripes=self._settings.segment_max_stripes,
            gateway_id=self._w._gateway_id,
        )

    async def run(self, body: ByteSource) -> ObjectInfo:
        stripe_size = self._settings.stripe_size_bytes
        md5 = _OrderedMd5()
        size = 0
        segment = 0
        stripe = await body.read_up_to(stripe_size)
        while stripe:
            expected = self._expected_chunk_bytes(segment)
            planned = self._plan(segment, expected)
            if self._begun:
                await self._w._store.plan_chunks(self.object_id, planned)
            else:
                await self._w._store.begin_upload(self._new_object(), planned)
                self._begun = True
            self._planned.extend(planned)
            if self._is_one_stripe():
                written = await self._write_one_stripe(planned, stripe, md5)
                stripe = await body.read_up_to(self._settings.stripe_size_bytes)
            else:
                stripe, written = await self._write_segment(planned, expected, stripe, body, md5)
            size += written
            segment += 1
        if not self._begun:
            await self._w._store.begin_upload(self._new_object(), [])
            self._begun = True
        digest = await md5.hexdigest()
        self._commit_sent = True
        outcome = await self._w._store.commit_upload(
            self.object_id, size, digest, self._stored, self._request.replace
        )
        self._committed = True
        if outcome.replaced is not None:
            replaced = outcome.replaced
            self._w._janitor.delete_after_reads(replaced.object_id, replaced.chunks)
        return outcome.info

    def _plan(self, segment: int, expected_chunk_bytes: int) -> list[PlannedChunk]:
        policy = self._request.policy
        # Room for what each chunk will hold; with the length unknown, for one stripe (nodes
        # reserve more as blocks arrive and answer RESOURCE_EXHAUSTED when out of room).
        chunk_bytes = expected_chunk_bytes or self._codec.block_size(
            self._settings.stripe_size_bytes
        )
        nodes = self._w.place(f"{self.object_id}/{segment}", policy, chunk_bytes)
        return [
            PlannedChunk(new_id(), node_id, segment, shard) for shard, node_id in enumerate(nodes)
        ]

    async def _write_segment(
        self,
        planned: Sequence[PlannedChunk],
        expected: int,
        first_stripe: bytes,
        body: ByteSource,
        md5: _OrderedMd5,
    ) -> tuple[bytes, int]:
        """Streams stripes into this segment's chunks; returns the next stripe and bytes taken."""
        depth = self._settings.write_stripes_in_flight
        queues: list[asyncio.Queue[tuple[bytes, int] | None]] = [
            asyncio.Queue(maxsize=depth) for _ in planned
        ]
        crcs: list[list[int]] = [[] for _ in planned]
        sizes = [0] * len(planned)
        stripe = first_stripe
        written = 0
        try:
            async with asyncio.TaskGroup() as group:
                pumps = [
                    group.create_task(self._pump(chunk, expected, queue))
                    for chunk, queue in zip(planned, queues, strict=True)
                ]
                for _ in range(self._settings.segment_max_stripes):
                    if not stripe:
                        break
                    await md5.update(stripe)
                    blocks = self._codec.encode(stripe)
                    for shard, block in enumerate(blocks):
                        crc = crc32c.crc32c(block)
                        crcs[shard].append(crc)
                        sizes[shard] += len(block)
                        await queues[shard].put((block, crc))
                    written += len(stripe)
                    del blocks
                    stripe = await body.read_up_to(self._settings.stripe_size_bytes)
                for queue in queues:
                    await queue.put(None)
        except BaseExceptionGroup as group_error:
            raise _most_telling(group_error) from group_error
        for pump, size in zip(pumps, sizes, strict=True):
            assert pump.result() == size, f"node stored {pump.result()} bytes of {size}"
        self._record_stored(planned, sizes, crcs)
        return stripe, written

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
        try:
            async with asyncio.TaskGroup() as group:
                for chunk, block, crc in zip(planned, blocks, crcs, strict=True):
                    group.create_task(self._put_once(chunk, block, crc))
        except BaseExceptionGroup as group_error:
            raise _most_telling(group_error) from group_error
        self._record_stored(planned, [len(b) for b in blocks], [[crc] for crc in crcs])
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

    async def _pump(
        self,
        chunk: PlannedChunk,
        expected_bytes: int,
        queue: asyncio.Queue[tuple[bytes, int] | None],
    ) -> int:
        upload: ChunkUpload = await self._client(chunk).start_put(chunk.chunk_id, expected_bytes)
        finished = False
        try:
            while (item := await queue.get()) is not None:
                await upload.send(*item)
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
        return state != COMMITTED
