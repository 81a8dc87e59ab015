"""The write pipeline: stripe → encode → place → store → commit, or roll back whole.

A body is cut into stripes; each stripe is encoded into K+M blocks and block i of every stripe
in a segment streams to the node holding chunk i of that segment, through the chunk-set writer
(chunkset.py), which bounds memory whatever the object size. The object becomes visible in one
metadata transaction after every chunk has been fsynced by its node; any failure before that
deletes what was written and leaves no rows.

Degraded writes: with fewer writable nodes than shards, two shards of a segment may share a
node (last resort), and a node that fails mid-upload is dropped while enough others go on
(``RedundancyPolicy.min_write_nodes`` distinct nodes). Such segments are committed as below
target, queued for repair in the commit's own transaction.

Small objects under the default policy skip all of this: their bytes are committed inline,
with the object row, in one metadata transaction (policy_choice.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Sequence

from diststorage.core.errors import (
    AlreadyExists,
    BodyLengthMismatch,
    DiststorageError,
    ObjectNotFound,
    PreconditionFailed,
)
from diststorage.core.ids import new_id
from diststorage.core.policy import INLINE_POLICY, RedundancyPolicy
from diststorage.core.settings import GatewaySettings
from diststorage.erasure import Codec, codec_for
from diststorage.gateway.objects.chunkset import ChunkJob, ChunkSetWriter, SetOutcome, StripeSink
from diststorage.gateway.objects.operations import DeleteOperation, PutOperation
from diststorage.gateway.objects.policy_choice import KeepInline, choose_policy
from diststorage.gateway.objects.ports import (
    ByteSource,
    ChecksumSource,
    ChunkDeleter,
    ClusterWidth,
)
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

log = logging.getLogger(__name__)

# Below this, hashing on the event loop is cheaper than a hop to a thread.
INLINE_HASH_BYTES = 256 * 1024


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


class ObjectWriter:
    def __init__(
        self,
        settings: GatewaySettings,
        store: MetadataStore,
        width: ClusterWidth,
        chunk_sets: ChunkSetWriter,
        janitor: ChunkDeleter,
        gateway_id: str,
    ) -> None:
        self._settings = settings
        self._store = store
        self._width = width
        self._chunk_sets = chunk_sets
        self._janitor = janitor
        self._gateway_id = gateway_id
        self._active: dict[str, _Upload] = {}

    async def write(
        self, operation: PutOperation, body: ByteSource, checksum: ChecksumSource | None = None
    ) -> ObjectInfo:
        """Stores the body under the key; 2xx-worthy only once this returns.

        Raises NotEnoughNodes / InsufficientStorage / NodeUnavailable when the cluster cannot
        take it, AlreadyExists for a create over a committed key, PreconditionFailed when
        ``operation.if_match`` does not hold, BodyLengthMismatch or ClientGone for a bad body.
        On any error or cancellation nothing stays visible. ``checksum``, asked once the body
        has been read to its end, is kept with the object. A part (``operation.part``) raises
        NoSuchUpload when its upload ended before the part's commit, its chunks deleted.
        """
        choice = choose_policy(
            operation.requested_policy, operation.declared_size, self._width, self._settings
        )
        if isinstance(choice, KeepInline):
            return await self._write_inline(operation, body, checksum)
        # Cheap refusals before any byte is stored; the commit decides again, atomically.
        await self._check_claim(operation)
        object_id = new_id()
        upload = _Upload(
            self._settings,
            self._store,
            self._chunk_sets,
            self._new_object(operation, object_id, choice.policy.spec),
            choice.policy,
            operation,
            self._committed,
            checksum,
        )
        self._active[object_id] = upload
        try:
            return await upload.run(body)
        except BaseException:
            await asyncio.shield(upload.roll_back())
            raise
        finally:
            del self._active[object_id]

    async def delete(self, operation: DeleteOperation) -> None:
        """Deletes the object at the key; its chunks go once no download of it runs here.

        Raises ObjectNotFound when no object is committed at the key.
        """
        deleted = await self._store.delete_object(operation.namespace, operation.key)
        self._janitor.delete_after_reads(deleted.object_id, deleted.chunks)

    async def _check_claim(self, operation: PutOperation) -> None:
        if operation.if_match is not None:
            try:
                info = await self._store.get_info(operation.namespace, operation.key)
            except ObjectNotFound:
                raise PreconditionFailed(f"no object under key {operation.key!r}") from None
            if operation.if_match not in ("*", info.etag):
                raise PreconditionFailed(f"key {operation.key!r} is at another ETag")
        elif not operation.replace and await self._store.key_exists(
            operation.namespace, operation.key
        ):
            raise AlreadyExists(f"key {operation.key!r} already exists")

    async def _write_inline(
        self, operation: PutOperation, body: ByteSource, checksum: ChecksumSource | None
    ) -> ObjectInfo:
        """Reads the whole (small) body and commits it with its object in one transaction."""
        declared = operation.declared_size
        assert declared is not None
        # One byte more than announced: the read ends at the body's end, which checks its length.
        data = await body.read_up_to(declared + 1)
        if len(data) != declared:
            raise BodyLengthMismatch(
                f"Content-Length announced {declared} bytes, the body had more"
            )
        new = self._new_object(operation, new_id(), INLINE_POLICY)
        md5_hex = hashlib.md5(data, usedforsecurity=False).hexdigest()
        stored_checksum = None if checksum is None else checksum.stored_checksum()
        if operation.part is not None:
            part = operation.part
            outcome = await self._store.multipart.commit_inline_part(
                new, data, md5_hex, part.upload_id, part.part_number, stored_checksum
            )
        else:
            outcome = await self._store.commit_inline(
                new,
                data,
                md5_hex,
                operation.replace,
                checksum=stored_checksum,
                if_match=operation.if_match,
            )
        return self._committed(outcome)

    def _new_object(self, operation: PutOperation, object_id: str, policy: str) -> NewObject:
        return NewObject(
            object_id=object_id,
            namespace=operation.namespace,
            key=operation.key,
            content_type=operation.content_type,
            policy=policy,
            stripe_size_bytes=self._settings.stripe_size_bytes,
            segment_stripes=self._settings.segment_max_stripes,
            gateway_id=self._gateway_id,
            attrs=operation.attrs,
        )

    def _committed(self, outcome: CommitOutcome) -> ObjectInfo:
        """The object a commit made visible; the version it replaced goes once unread."""
        if outcome.replaced is not None:
            replaced = outcome.replaced
            self._janitor.delete_after_reads(replaced.object_id, replaced.chunks)
        return outcome.info

    def active_uploads(self) -> list[str]:
        """Object ids of the uploads running on this gateway (garbage collection spares them)."""
        return list(self._active)


class _Upload:
    """The state of one upload, so that a failure anywhere can be rolled back whole."""

    def __init__(
        self,
        settings: GatewaySettings,
        store: MetadataStore,
        chunk_sets: ChunkSetWriter,
        new_object: NewObject,
        policy: RedundancyPolicy,
        operation: PutOperation,
        committed: Callable[[CommitOutcome], ObjectInfo],
        checksum: ChecksumSource | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._chunk_sets = chunk_sets
        self._new_object = new_object
        self._policy = policy
        self._operation = operation
        self._committed_info = committed
        self._checksum = checksum
        self._codec: Codec = codec_for(policy)
        self.object_id = new_object.object_id
        self._job: ChunkJob = chunk_sets.job(f"upload {self.object_id}")
        self._begun = False
        self._stored: list[StoredChunk] = []
        self._dropped: list[ChunkRef] = []
        self._degraded: list[DegradedSegment] = []
        # Nodes that failed this upload get none of its later segments.
        self._avoid: set[str] = set()
        self._committed = False
        self._commit_sent = False

    async def run(self, body: ByteSource) -> ObjectInfo:
        stripes = _Stripes(body, self._settings.stripe_size_bytes)
        md5 = _OrderedMd5()
        size = 0
        segment = 0
        while await stripes.more():
            expected = self._expected_chunk_bytes(segment)
            planned = self._plan(segment, expected)
            if self._begun:
                await self._store.plan_chunks(self.object_id, planned)
            else:
                await self._store.begin_upload(self._new_object, planned)
                self._begun = True
            if self._is_one_stripe():
                written, count = await self._write_one_stripe(planned, stripes.take(), md5)
            else:
                written, count = await self._write_segment(planned, expected, stripes, md5)
            self._note_degraded(segment, count, planned)
            size += written
            segment += 1
        if not self._begun:
            await self._store.begin_upload(self._new_object, [])
            self._begun = True
        digest = await md5.hexdigest()
        self._commit_sent = True
        outcome = await self._commit(size, digest)
        self._committed = True
        return self._committed_info(outcome)

    async def _commit(self, size: int, md5_hex: str) -> CommitOutcome:
        """Makes the upload the visible version of its key, or a part of its multipart upload."""
        checksum = None if self._checksum is None else self._checksum.stored_checksum()
        part = self._operation.part
        if part is not None:
            return await self._store.multipart.commit_part(
                self.object_id,
                part.upload_id,
                part.part_number,
                size,
                md5_hex,
                self._stored,
                dropped=self._dropped,
                degraded=self._degraded,
                checksum=checksum,
            )
        return await self._store.commit_upload(
            self.object_id,
            size,
            md5_hex,
            self._stored,
            self._operation.replace,
            dropped=self._dropped,
            degraded=self._degraded,
            checksum=checksum,
            if_match=self._operation.if_match,
        )

    def _plan(self, segment: int, expected_chunk_bytes: int) -> list[PlannedChunk]:
        # Room for what each chunk will hold; with the length unknown, for one stripe (nodes
        # reserve more as blocks arrive and answer RESOURCE_EXHAUSTED when out of room).
        chunk_bytes = expected_chunk_bytes or self._codec.block_size(
            self._settings.stripe_size_bytes
        )
        placement_key = f"{self.object_id}/{segment}"
        # A policy the client asked for is honoured on distinct nodes or refused; once a node
        # has failed this upload, it is degraded anyway and later segments may share nodes.
        may_share = self._operation.requested_policy is None or bool(self._avoid)
        nodes = self._chunk_sets.place(
            placement_key, self._policy, chunk_bytes, self._avoid, may_share
        )
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
        """Streams stripes into this segment's chunks; returns the bytes taken and the stripes
        written. A chunk whose node fails is dropped while enough others carry on."""

        async def produce(sink: StripeSink) -> tuple[int, int]:
            written = 0
            count = 0
            for _ in range(self._settings.segment_max_stripes):
                if not await stripes.more():
                    break
                stripe = stripes.take()
                await md5.update(stripe)
                await sink.put(self._codec.encode(stripe))
                written += len(stripe)
                count += 1
                # The stripe must not stay alive while the next one is read.
                del stripe
            return written, count

        (written, count), outcome = await self._job.write_set(
            planned, expected, self._policy.min_write_nodes, produce
        )
        self._record(outcome)
        return written, count

    async def _write_one_stripe(
        self, planned: Sequence[PlannedChunk], stripe: bytes, md5: _OrderedMd5
    ) -> tuple[int, int]:
        """A whole object in one stripe: each chunk is one block, stored in one round trip."""
        await md5.update(stripe)
        blocks = self._codec.encode(stripe)
        self._record(await self._job.put_once(planned, blocks, self._policy.min_write_nodes))
        return len(stripe), 1

    def _record(self, outcome: SetOutcome) -> None:
        self._stored.extend(outcome.stored)
        # The node may have stored the chunk after all (its answer was lost): queue it as
        # garbage at commit rather than leave it unreferenced.
        self._dropped.extend(outcome.dropped)
        self._avoid.update(ref.node_id for ref in outcome.dropped)

    def _note_degraded(self, segment: int, stripes: int, planned: Sequence[PlannedChunk]) -> None:
        dropped = {ref.chunk_id for ref in self._dropped}
        nodes = {c.node_id for c in planned if c.chunk_id not in dropped}
        if len(nodes) < self._policy.total_shards:
            margin = len(nodes) - self._policy.needed_to_read
            self._degraded.append(DegradedSegment(segment, stripes, margin))

    def _is_one_stripe(self) -> bool:
        declared = self._operation.declared_size
        return declared is not None and declared <= self._settings.stripe_size_bytes

    def _expected_chunk_bytes(self, segment: int) -> int:
        """Bytes each chunk of this segment will hold, when the body's length is known."""
        declared = self._operation.declared_size
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

    async def roll_back(self) -> None:
        """Deletes every chunk this upload may have written and forgets its rows."""
        if self._committed or (self._commit_sent and not await self._commit_failed()):
            return
        undeleted = await self._job.roll_back()
        if self._begun:
            try:
                await self._store.abort_upload(self.object_id, undeleted)
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
            state = await self._store.upload_state(self.object_id)
        except DiststorageError:
            log.warning("upload %s: commit outcome unknown; left for GC", self.object_id)
            return False
        return state not in (ObjectState.COMMITTED, ObjectState.PART)
