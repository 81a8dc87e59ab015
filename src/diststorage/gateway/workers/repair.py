"""The repair worker: brings every queued segment back to full redundancy.

Segments come off the durable queue most-at-risk first (fewest shards to spare). For each,
the plan (see repair_plan) says which shards need a new home; the worker reads the segment
stripe by stripe from the chunks still readable, re-encodes it, streams just the missing
blocks to fresh nodes, and swaps the chunk rows in one transaction. The replaced chunks are
queued as garbage, so a node that comes back after being declared lost has its stale copies
deleted, never served. Every byte written passes a token bucket, so repair cannot starve
foreground traffic. A crash at any point loses nothing: the task stays queued, and chunks
written but never committed are collected as unreferenced.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from diststorage.core.errors import DiststorageError
from diststorage.core.ids import new_id
from diststorage.core.policy import RedundancyPolicy, parse_policy
from diststorage.core.settings import GatewaySettings
from diststorage.core.worker import BUSY, Figures, Step, WorkerState
from diststorage.erasure import Codec, codec_for
from diststorage.gateway.objects.chunkset import ChunkJob, ChunkSetWriter, StripeSink
from diststorage.gateway.objects.geometry import Geometry
from diststorage.gateway.objects.ports import ChunkDeleter
from diststorage.gateway.objects.reader import ObjectReader
from diststorage.gateway.workers.repair_plan import NodeHealth, SegmentPlan, plan_segment
from diststorage.gateway.workers.throttle import RateMeter, TokenBucket
from diststorage.meta import (
    ChunkRef,
    MaintenanceStore,
    NodeLifecycle,
    NodeLiveness,
    PlannedChunk,
    RepairTaskRef,
    SegmentLayout,
    StoredChunk,
)

log = logging.getLogger(__name__)

TASKS_PER_STEP = 16
# With nothing due, the queue is looked at again this soon.
IDLE_INTERVAL_S = 1.0
# A segment with no node to take its shards yet is looked at again this soon (and at once
# when a node becomes up).
NO_TARGET_DELAY_S = 3.0
# Segments repaired at once: small ones are round trips more than bytes.
CONCURRENT_TASKS = 4
RETRY_DELAY_S = 10.0
# A segment with too few readable shards and none that may come back is lost; it is looked at
# again now and then in case a node it needs is brought back by hand.
UNRECOVERABLE_RETRY_S = 300.0


@dataclass
class RepairCounters:
    chunks_repaired: int = 0
    segments_repaired: int = 0
    failures: int = 0


class NodeTable(Protocol):
    """What repair asks about nodes to judge their health (``Inventory``)."""

    @property
    def returns(self) -> int:
        """How many times a node became up again."""
        ...

    def knows(self, node_id: str) -> bool: ...

    def down_for_s(self, node_id: str) -> float | None: ...

    def state(self, node_id: str) -> NodeLiveness: ...

    def lifecycle(self, node_id: str) -> NodeLifecycle: ...

    def node_ids(self) -> list[str]: ...


class RepairWorker:
    name = "repair"

    def __init__(
        self,
        settings: GatewaySettings,
        maintenance: MaintenanceStore,
        inventory: NodeTable,
        chunk_sets: ChunkSetWriter,
        reader: ObjectReader,
        janitor: ChunkDeleter,
        bucket: TokenBucket,
    ) -> None:
        self._settings = settings
        self._maintenance = maintenance
        self._inventory = inventory
        self._chunk_sets = chunk_sets
        self._reader = reader
        self._janitor = janitor
        self._bucket = bucket
        self._queued_nodes: set[str] = set()
        self._returns_seen = inventory.returns
        self._in_flight: set[str] = set()
        self.unrecoverable: set[tuple[str, int]] = set()
        self.meter = RateMeter()
        self.counters = RepairCounters()
        self.state = WorkerState.IDLE

    # -- what the rest of the gateway asks -----------------------------------------------------

    def health(self, node_id: str) -> NodeHealth:
        pending = self._inventory.lifecycle(node_id) == NodeLifecycle.PENDING
        if not self._inventory.knows(node_id) or pending:
            # A pending node is no member: nothing it might hold is counted on.
            return NodeHealth.LOST
        down_s = self._inventory.down_for_s(node_id)
        if down_s is not None:
            return (
                NodeHealth.LOST if down_s >= self._settings.repair_grace_s else NodeHealth.WAITING
            )
        if self._inventory.state(node_id) != NodeLiveness.UP:
            return NodeHealth.WAITING
        if self._inventory.lifecycle(node_id) != NodeLifecycle.ACTIVE:
            return NodeHealth.LEAVING
        return NodeHealth.HEALTHY

    def in_flight_chunks(self) -> frozenset[str]:
        """Chunks being written and not yet committed: garbage collection must spare them."""
        return frozenset(self._in_flight)

    # -- the work ------------------------------------------------------------------------------

    def status(self) -> Figures:
        return {
            "chunks_repaired": self.counters.chunks_repaired,
            "segments_repaired": self.counters.segments_repaired,
            "failures": self.counters.failures,
            "rate_bytes_per_s": self.meter.per_second(),
        }

    async def work(self) -> Step:
        await self._queue_leaving_nodes()
        if self._inventory.returns != self._returns_seen:
            # A node became up again: segments waiting for a home or for it can go on.
            self._returns_seen = self._inventory.returns
            await self._maintenance.wake_repair_tasks()
        tasks = await self._maintenance.due_repair_tasks(TASKS_PER_STEP)
        if not tasks:
            self.state = WorkerState.IDLE
            return Step(WorkerState.IDLE, IDLE_INTERVAL_S)
        waited_before = self._bucket.waited_s
        self.state = WorkerState.BUSY
        limit = asyncio.Semaphore(CONCURRENT_TASKS)

        async def repair(task: RepairTaskRef) -> None:
            async with limit:
                await self._repair(task)

        async with asyncio.TaskGroup() as group:
            for task in tasks:
                group.create_task(repair(task))
        # The bucket already made this unit wait for its bytes: the next one may start at once.
        throttled = self._bucket.waited_s > waited_before
        self.state = WorkerState.THROTTLED if throttled else WorkerState.BUSY
        return BUSY

    async def close(self) -> None:
        """Nothing held between units: each repair task's state lives in the database."""

    async def _queue_leaving_nodes(self) -> None:
        """Queues the segments of nodes newly lost or draining (once per departure)."""
        leaving = {
            node_id
            for node_id in self._inventory.node_ids()
            if self.health(node_id) in (NodeHealth.LOST, NodeHealth.LEAVING)
        }
        # A node that came back is forgotten here, so that leaving again queues it again.
        self._queued_nodes &= leaving
        fresh = sorted(leaving - self._queued_nodes)
        if fresh:
            queued = await self._maintenance.queue_segments_on_nodes(fresh)
            self._queued_nodes |= set(fresh)
            log.warning(
                "nodes %s lost or draining: %d segments queued for repair",
                ", ".join(n[:8] for n in fresh),
                queued,
            )

    async def _repair(self, task: RepairTaskRef) -> None:
        layout = await self._maintenance.segment_layout(task.object_id, task.segment_index)
        if layout is None:
            await self._maintenance.finish_repair_task(task.object_id, task.segment_index)
            return
        policy = parse_policy(layout.info.policy)
        plan = plan_segment(layout.chunks, policy.total_shards, policy.needed_to_read, self.health)
        key = (task.object_id, task.segment_index)
        if plan.complete:
            self.unrecoverable.discard(key)
            await self._maintenance.finish_repair_task(*key)
            return
        if len(plan.sources) < policy.needed_to_read:
            await self._defer_unreadable(task, plan, policy)
            return
        try:
            done = await self._rebuild_some(layout, policy, plan)
        except DiststorageError as error:
            self.counters.failures += 1
            log.warning("repair of %s segment %d failed, retrying: %s", *key, error)
            await self._maintenance.defer_repair_task(*key, plan.margin, RETRY_DELAY_S)
            return
        self.unrecoverable.discard(key)
        if done:
            self.counters.segments_repaired += 1
            await self._maintenance.finish_repair_task(*key)
        else:
            await self._maintenance.defer_repair_task(*key, plan.margin, NO_TARGET_DELAY_S)

    async def _defer_unreadable(
        self, task: RepairTaskRef, plan: SegmentPlan, policy: RedundancyPolicy
    ) -> None:
        key = (task.object_id, task.segment_index)
        if plan.waiting:
            # Some shards sit on nodes that may come back: wait for them.
            await self._maintenance.defer_repair_task(*key, plan.margin, RETRY_DELAY_S)
            return
        if key not in self.unrecoverable:
            self.unrecoverable.add(key)
            log.error(
                "object %s segment %d has %d readable shards of the %d it needs",
                *key,
                len(plan.sources),
                policy.needed_to_read,
            )
        await self._maintenance.defer_repair_task(*key, plan.margin, UNRECOVERABLE_RETRY_S)

    async def _rebuild_some(
        self, layout: SegmentLayout, policy: RedundancyPolicy, plan: SegmentPlan
    ) -> bool:
        """Rebuilds as many of the plan's shards as there are nodes for; True if all."""
        info = layout.info
        geometry = Geometry(info.size_bytes, info.stripe_size_bytes, info.segment_stripes)
        codec = codec_for(policy)
        stripes = geometry.segment_stripe_range(layout.segment_index)
        chunk_bytes = sum(codec.block_size(geometry.stripe_length(s)) for s in stripes)
        avoid = plan.keep_nodes | {c.node_id for c in plan.retire}
        placement_key = f"{info.object_id}/{layout.segment_index}"
        targets = self._chunk_sets.place_emptiest(placement_key, chunk_bytes, avoid)
        shards = plan.rebuild[: len(targets)]
        if not shards:
            log.info(
                "no node can take a shard of %s segment %d yet",
                info.object_id,
                layout.segment_index,
            )
            return False
        planned = [
            PlannedChunk(new_id(), node_id, layout.segment_index, shard)
            for shard, node_id in zip(shards, targets, strict=False)
        ]
        job = self._chunk_sets.job(f"repair of {info.object_id} segment {layout.segment_index}")
        self._in_flight.update(c.chunk_id for c in planned)
        try:
            new = await self._write(job, planned, geometry, codec, plan, chunk_bytes)
            retire = [
                ChunkRef(c.chunk_id, c.node_id) for c in plan.retire if c.shard_index in shards
            ]
            swapped = await self._maintenance.replace_chunks(info.object_id, retire, new)
        finally:
            self._in_flight.difference_update(c.chunk_id for c in planned)
        if not swapped:
            # The object changed meanwhile: these copies belong to nothing.
            await job.roll_back()
            return False
        self._janitor.delete_after_reads(info.object_id, retire)
        self.counters.chunks_repaired += len(new)
        return len(shards) == len(plan.rebuild)

    async def _write(
        self,
        job: ChunkJob,
        planned: Sequence[PlannedChunk],
        geometry: Geometry,
        codec: Codec,
        plan: SegmentPlan,
        chunk_bytes: int,
    ) -> list[StoredChunk]:
        """Streams the rebuilt blocks into the new chunks; returns them with their CRCs and
        digests (recorded by ``replace_chunks``). The blocks are rebuilt from stripes read
        through the segment fetcher, which holds every source block to its digest.

        Every chunk must land: any failure deletes them all and is raised.
        """
        segment = planned[0].segment_index
        stripes = geometry.segment_stripe_range(segment)
        fetcher = self._reader.segment_fetcher(
            codec, geometry, segment, dict(plan.sources), last_stripe=stripes[-1]
        )

        async def produce(sink: StripeSink) -> None:
            for stripe in stripes:
                blocks = codec.encode(b"".join(await fetcher.stripe(stripe)))
                await sink.put([blocks[chunk.shard_index] for chunk in planned])

        try:
            _, outcome = await job.write_set(
                planned, chunk_bytes, len(planned), produce, throttle=self._throttle
            )
        except BaseException:
            await asyncio.shield(job.roll_back())
            raise
        finally:
            await fetcher.close()
        return outcome.stored

    async def _throttle(self, size_bytes: int) -> None:
        """Every rebuilt byte passes the token bucket, so repair cannot starve foreground
        traffic."""
        await self._bucket.take(size_bytes)
        self.meter.add(size_bytes)
