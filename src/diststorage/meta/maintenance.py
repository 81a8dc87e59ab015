"""What the background workers ask of the database: the repair queue, chunk states, node
lifecycle and garbage collection. Same contract as the metadata store: one operation per
method, run under a deadline, foreign errors translated (see base).

"Committed" here covers the parts of multipart uploads too (``IS_STORED``): a part row's chunks
are durable bytes like any object's, whether its upload is still open or an object completed
from it owns it, so they are repaired, moved, audited and reported damaged alike."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Integer,
    and_,
    case,
    delete,
    func,
    literal,
    select,
    true,
    tuple_,
    union,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from diststorage.meta.base import (
    IS_STORED,
    SegmentToRepair,
    StoreBase,
    add_garbage,
    enqueue_repair,
    insert_ignoring_duplicates,
    object_info,
    segment_stripe_count,
    utc,
)
from diststorage.meta.digests import NO_DIGESTS
from diststorage.meta.durability import at_risk_segments, spare_histogram, stripe_totals
from diststorage.meta.models import ChunkRow, GarbageChunk, LeaseRow, NodeRow, ObjectRow, RepairTask
from diststorage.meta.records import (
    AtRiskSegment,
    ChunkRef,
    LeaseRecord,
    RepairBacklog,
    RepairTaskRef,
    SegmentLayout,
    StaleUpload,
    StoredChunk,
    StripeTotals,
    pack_crcs,
    unpack_crcs,
)
from diststorage.meta.states import ChunkState, NodeLifecycle, ObjectState


def _stripes_of_segment() -> ColumnElement[int]:
    """SQL for the number of stripes in a chunk's segment (floor division of integers)."""
    total = (ObjectRow.size_bytes + ObjectRow.stripe_size_bytes - 1) // ObjectRow.stripe_size_bytes
    left = total - ChunkRow.segment_index * ObjectRow.segment_stripes
    expression: ColumnElement[int] = case(
        (left < ObjectRow.segment_stripes, left), else_=ObjectRow.segment_stripes
    )
    return expression


def _stored(row: ChunkRow) -> StoredChunk:
    return StoredChunk(
        row.id,
        row.node_id,
        row.segment_index,
        row.shard_index,
        row.size_bytes,
        unpack_crcs(row.block_crcs),
        row.state,
        row.block_digests or NO_DIGESTS,
    )


class MaintenanceStore(StoreBase):
    # -- the repair queue --------------------------------------------------------------------

    async def queue_segments_on_nodes(self, node_ids: Sequence[str]) -> int:
        """Queues every committed segment with a chunk on these nodes (lost or draining)."""
        if not node_ids:
            return 0

        def operation(session: Session) -> int:
            now = self._now()
            when = literal(now, type_=RepairTask.queued_at.type)
            segments = (
                select(
                    ChunkRow.object_id,
                    ChunkRow.segment_index,
                    _stripes_of_segment(),
                    literal(0, type_=Integer()),
                    literal(0, type_=Integer()),
                    when,
                    when,
                )
                .join(ObjectRow, ObjectRow.id == ChunkRow.object_id)
                .where(ChunkRow.node_id.in_(list(node_ids)), IS_STORED)
                .distinct()
            )
            statement = insert_ignoring_duplicates(session, RepairTask).from_select(
                [
                    "object_id",
                    "segment_index",
                    "stripe_count",
                    "margin",
                    "attempts",
                    "queued_at",
                    "not_before",
                ],
                segments,
            )
            result = session.execute(statement)
            return max(int(getattr(result, "rowcount", 0) or 0), 0)

        return await self._write(operation)

    async def mark_chunks(
        self, chunk_ids: Sequence[str], state: str, placed_on: str | None = None
    ) -> int:
        """Sets the state of committed chunks (damaged, or to move) and queues their segments;
        with ``placed_on``, only of those the metadata places on that node.

        A damaged chunk stays damaged: marking it to move would make it readable again.
        Returns how many chunks changed.
        """
        if not chunk_ids:
            return 0

        def operation(session: Session) -> int:
            rows = session.execute(
                select(
                    ChunkRow.id,
                    ChunkRow.object_id,
                    ChunkRow.segment_index,
                    ObjectRow.size_bytes,
                    ObjectRow.stripe_size_bytes,
                    ObjectRow.segment_stripes,
                )
                .join(ObjectRow, ObjectRow.id == ChunkRow.object_id)
                .where(
                    ChunkRow.id.in_(list(chunk_ids)),
                    ChunkRow.state != ChunkState.DAMAGED,
                    ChunkRow.state != state,
                    IS_STORED,
                )
                .where(true() if placed_on is None else ChunkRow.node_id == placed_on)
            ).all()
            if not rows:
                return 0
            session.execute(
                update(ChunkRow).where(ChunkRow.id.in_([r[0] for r in rows])).values(state=state)
            )
            segments = {
                (object_id, segment): segment_stripe_count(size, stripe, per_segment, segment)
                for _, object_id, segment, size, stripe, per_segment in rows
            }
            enqueue_repair(
                session,
                [SegmentToRepair(o, s, count, 0) for (o, s), count in segments.items()],
                self._now(),
            )
            return len(rows)

        return await self._write(operation)

    async def due_repair_tasks(self, limit: int) -> list[RepairTaskRef]:
        """Queued segments whose time has come, most at risk first."""

        def operation(session: Session) -> list[RepairTaskRef]:
            rows = session.scalars(
                select(RepairTask)
                .where(RepairTask.not_before <= self._now())
                .order_by(RepairTask.margin, RepairTask.queued_at)
                .limit(limit)
            )
            return [RepairTaskRef(r.object_id, r.segment_index, r.margin, r.attempts) for r in rows]

        return await self._read(operation)

    async def at_risk_segments(self, limit: int) -> list[AtRiskSegment]:
        """The ``limit`` queued segments most at risk (least margin, then oldest), due or
        not, with their objects' keys."""

        def operation(session: Session) -> list[AtRiskSegment]:
            rows = session.execute(
                select(RepairTask, ObjectRow)
                .join(ObjectRow, ObjectRow.id == RepairTask.object_id)
                .order_by(RepairTask.margin, RepairTask.queued_at)
                .limit(limit)
            )
            return [
                AtRiskSegment(
                    object_info(obj).key,
                    task.object_id,
                    task.segment_index,
                    task.stripe_count,
                    task.margin,
                    task.attempts,
                    task.not_before,
                )
                for task, obj in rows.tuples()
            ]

        return await self._read(operation)

    async def segment_layout(self, object_id: str, segment_index: int) -> SegmentLayout | None:
        """A committed segment and all its chunks; None if the object is gone or pending."""

        def operation(session: Session) -> SegmentLayout | None:
            row = session.get(ObjectRow, object_id)
            if row is None or row.state == ObjectState.PENDING:
                return None
            chunks = session.scalars(
                select(ChunkRow)
                .where(ChunkRow.object_id == object_id, ChunkRow.segment_index == segment_index)
                .order_by(ChunkRow.shard_index)
            )
            return SegmentLayout(object_info(row), segment_index, tuple(map(_stored, chunks)))

        return await self._read(operation)

    async def replace_chunks(
        self, object_id: str, retired: Sequence[ChunkRef], new: Sequence[StoredChunk]
    ) -> bool:
        """Swaps chunks of a committed object for their rebuilt copies, in one transaction.

        The retired chunks are queued as garbage. Returns False, changing nothing, when the
        object is no longer committed or a retired chunk is no longer its: the caller then
        deletes the new chunks and evaluates the segment again.
        """

        def operation(session: Session) -> bool:
            row = session.get(ObjectRow, object_id)
            if row is None or row.state == ObjectState.PENDING:
                return False
            retired_ids = [r.chunk_id for r in retired]
            present = session.scalar(
                select(func.count())
                .select_from(ChunkRow)
                .where(ChunkRow.id.in_(retired_ids), ChunkRow.object_id == object_id)
            )
            if present != len(retired_ids):
                return False
            taken = session.scalar(
                select(func.count())
                .select_from(ChunkRow)
                .where(
                    ChunkRow.object_id == object_id,
                    ChunkRow.id.not_in(retired_ids),
                    tuple_(ChunkRow.segment_index, ChunkRow.shard_index).in_(
                        [(c.segment_index, c.shard_index) for c in new]
                    ),
                )
            )
            if taken:
                return False
            session.execute(delete(ChunkRow).where(ChunkRow.id.in_(retired_ids)))
            add_garbage(session, retired, self._now())
            session.add_all(
                ChunkRow(
                    id=c.chunk_id,
                    object_id=object_id,
                    segment_index=c.segment_index,
                    shard_index=c.shard_index,
                    node_id=c.node_id,
                    size_bytes=c.size_bytes,
                    block_crcs=pack_crcs(list(c.block_crcs)),
                    block_digests=c.block_digests or None,
                    state=ChunkState.OK,
                )
                for c in new
            )
            return True

        return await self._write(operation)

    async def finish_repair_task(self, object_id: str, segment_index: int) -> None:
        await self._write(
            lambda session: session.execute(
                delete(RepairTask).where(
                    RepairTask.object_id == object_id, RepairTask.segment_index == segment_index
                )
            )
        )

    async def defer_repair_task(
        self, object_id: str, segment_index: int, margin: int, delay_s: float
    ) -> None:
        """Puts a segment back in the queue for later, with its risk re-assessed."""
        await self._write(
            lambda session: session.execute(
                update(RepairTask)
                .where(RepairTask.object_id == object_id, RepairTask.segment_index == segment_index)
                .values(
                    margin=margin,
                    attempts=RepairTask.attempts + 1,
                    not_before=self._now(delay_s),
                )
            )
        )

    async def wake_repair_tasks(self) -> None:
        """Makes every deferred task due now (a node came back: what waited may be done)."""
        now = self._now()
        await self._write(
            lambda session: session.execute(
                update(RepairTask).where(RepairTask.not_before > now).values(not_before=now)
            )
        )

    async def repair_backlog(self, unavailable_nodes: Sequence[str]) -> RepairBacklog:
        def operation(session: Session) -> RepairBacklog:
            queued, stripes = session.execute(
                select(func.count(), func.coalesce(func.sum(RepairTask.stripe_count), 0))
            ).one()
            below = int(stripes)
            if unavailable_nodes:
                on_unavailable = (
                    select(ChunkRow.object_id, ChunkRow.segment_index, _stripes_of_segment())
                    .join(ObjectRow, ObjectRow.id == ChunkRow.object_id)
                    .where(ChunkRow.node_id.in_(list(unavailable_nodes)), IS_STORED)
                )
                in_queue = select(
                    RepairTask.object_id, RepairTask.segment_index, RepairTask.stripe_count
                )
                either = union(on_unavailable, in_queue).subquery()
                below = int(
                    session.scalar(select(func.coalesce(func.sum(either.columns[2]), 0))) or 0
                )
            at_risk = spare_histogram(at_risk_segments(session, unavailable_nodes))
            spare = min((group.spare for group in at_risk), default=None)
            return RepairBacklog(int(queued), int(stripes), below, spare, at_risk)

        return await self._read(operation)

    async def stripe_totals(self) -> StripeTotals:
        """Every stored stripe per policy and the inline objects: a pass over every object
        row, so callers cache it (see meta.durability)."""
        return await self._read(stripe_totals)

    # -- nodes -------------------------------------------------------------------------------

    async def set_node_lifecycle(self, node_id: str, lifecycle: NodeLifecycle) -> bool:
        """Returns False for a node the database does not know."""

        def operation(session: Session) -> bool:
            row = session.get(NodeRow, node_id)
            if row is None:
                return False
            row.lifecycle = lifecycle
            return True

        return await self._write(operation)

    async def forget_node(self, node_id: str) -> None:
        """Drops the node and the garbage queued on it (it can never be deleted now)."""

        def operation(session: Session) -> None:
            session.execute(delete(GarbageChunk).where(GarbageChunk.node_id == node_id))
            session.execute(delete(NodeRow).where(NodeRow.id == node_id))

        await self._write(operation)

    async def chunks_by_node(self) -> dict[str, tuple[int, int]]:
        """Node id → (chunks, bytes) that the metadata places on it."""

        def operation(session: Session) -> dict[str, tuple[int, int]]:
            rows = session.execute(
                select(
                    ChunkRow.node_id, func.count(), func.coalesce(func.sum(ChunkRow.size_bytes), 0)
                ).group_by(ChunkRow.node_id)
            )
            return {node_id: (int(count), int(size)) for node_id, count, size in rows}

        return await self._read(operation)

    async def movable_chunks(self, node_id: str, limit: int) -> list[tuple[str, int]]:
        """Sound committed chunks on a node, biggest first: (chunk id, bytes)."""

        def operation(session: Session) -> list[tuple[str, int]]:
            rows = session.execute(
                select(ChunkRow.id, ChunkRow.size_bytes)
                .join(ObjectRow, ObjectRow.id == ChunkRow.object_id)
                .where(ChunkRow.node_id == node_id, ChunkRow.state == ChunkState.OK, IS_STORED)
                .order_by(ChunkRow.size_bytes.desc())
                .limit(limit)
            )
            return [(chunk_id, int(size)) for chunk_id, size in rows]

        return await self._read(operation)

    # -- leases ------------------------------------------------------------------------------

    async def acquire_lease(
        self, name: str, holder: str, ttl_s: float, figures: str | None = None
    ) -> datetime | None:
        """Takes or renews the lease for ``ttl_s`` seconds, with the holder's ``figures`` (a
        JSON object, or None) in place of what it held; returns its new expiry, or None
        while another holder's lease runs. Expiry is judged on the caller's UTC clock, so the
        holders' clocks must agree to well within the TTL (NTP does)."""

        def operation(session: Session) -> datetime | None:
            now = self._now()
            row = session.scalar(select(LeaseRow).where(LeaseRow.name == name).with_for_update())
            if row is not None and row.holder != holder and utc(row.expires_at) > now:
                return None
            expires = self._now(ttl_s)
            if row is None:
                session.add(LeaseRow(name=name, holder=holder, expires_at=expires, figures=figures))
            else:
                row.holder = holder
                row.expires_at = expires
                row.figures = figures
            return expires

        try:
            return await self._write(operation)
        except IntegrityError:
            return None  # another holder created the lease first

    async def lease_holder(self, name: str) -> tuple[str, datetime] | None:
        def operation(session: Session) -> tuple[str, datetime] | None:
            row = session.get(LeaseRow, name)
            return None if row is None else (row.holder, utc(row.expires_at))

        return await self._read(operation)

    async def lease_record(self, name: str) -> LeaseRecord | None:
        """The lease's holder, expiry and the figures it published with its last renewal."""

        def operation(session: Session) -> LeaseRecord | None:
            row = session.get(LeaseRow, name)
            if row is None:
                return None
            return LeaseRecord(row.holder, utc(row.expires_at), row.figures)

        return await self._read(operation)

    async def release_lease(self, name: str, holder: str) -> None:
        await self._write(
            lambda session: session.execute(
                delete(LeaseRow).where(LeaseRow.name == name, LeaseRow.holder == holder)
            )
        )

    # -- garbage collection ------------------------------------------------------------------

    async def touch_uploads(self, object_ids: Sequence[str]) -> None:
        """Marks pending uploads as still running, so garbage collection leaves them alone."""
        if not object_ids:
            return
        await self._write(
            lambda session: session.execute(
                update(ObjectRow)
                .where(ObjectRow.id.in_(list(object_ids)), ObjectRow.state == ObjectState.PENDING)
                .values(touched_at=self._now())
            )
        )

    async def stale_uploads(self, untouched_since: datetime, limit: int) -> list[StaleUpload]:
        """Pending uploads nobody has touched since the given moment."""

        def operation(session: Session) -> list[StaleUpload]:
            rows = session.execute(
                select(ObjectRow.id, ObjectRow.gateway_id)
                .where(ObjectRow.state == ObjectState.PENDING, _untouched_since(untouched_since))
                .limit(limit)
            )
            return [StaleUpload(object_id, gateway_id) for object_id, gateway_id in rows]

        return await self._read(operation)

    async def collect_upload(self, object_id: str, untouched_since: datetime) -> list[ChunkRef]:
        """Forgets a stale pending upload, queueing its chunks as garbage; returns them.

        Checks staleness again inside the transaction, so an upload touched meanwhile stays.
        """

        def operation(session: Session) -> list[ChunkRef]:
            stale = session.scalar(
                select(ObjectRow.id).where(
                    ObjectRow.id == object_id,
                    ObjectRow.state == ObjectState.PENDING,
                    _untouched_since(untouched_since),
                )
            )
            if stale is None:
                return []
            refs = [
                ChunkRef(chunk_id, node_id)
                for chunk_id, node_id in session.execute(
                    select(ChunkRow.id, ChunkRow.node_id).where(ChunkRow.object_id == object_id)
                )
            ]
            add_garbage(session, refs, self._now())
            session.execute(delete(ChunkRow).where(ChunkRow.object_id == object_id))
            session.execute(delete(RepairTask).where(RepairTask.object_id == object_id))
            session.execute(delete(ObjectRow).where(ObjectRow.id == object_id))
            return refs

        return await self._write(operation)

    async def chunks_placed_on(
        self, node_id: str, after: str, upto: str | None, limit: int
    ) -> list[str]:
        """Ids of the sound chunks of committed objects that the metadata places on a node,
        ``after`` < id <= ``upto`` (no upper bound if None), in id order, at most ``limit``."""

        def operation(session: Session) -> list[str]:
            query = (
                select(ChunkRow.id)
                .join(ObjectRow, ObjectRow.id == ChunkRow.object_id)
                .where(
                    ChunkRow.node_id == node_id,
                    ChunkRow.id > after,
                    ChunkRow.state != ChunkState.DAMAGED,
                    IS_STORED,
                )
                .order_by(ChunkRow.id)
                .limit(limit)
            )
            if upto is not None:
                query = query.where(ChunkRow.id <= upto)
            return list(session.scalars(query))

        return await self._read(operation)

    async def known_chunks(self, chunk_ids: Sequence[str]) -> set[str]:
        """Those of the ids that some object (pending or committed) still references."""
        if not chunk_ids:
            return set()
        return await self._read(
            lambda session: set(
                session.scalars(select(ChunkRow.id).where(ChunkRow.id.in_(list(chunk_ids))))
            )
        )


def _untouched_since(moment: datetime) -> ColumnElement[bool]:
    return and_(func.coalesce(ObjectRow.touched_at, ObjectRow.created_at) < moment)
