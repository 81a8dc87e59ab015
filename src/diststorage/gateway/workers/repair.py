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

import crc32c

from diststorage.core.errors import DiststorageError, NodeUnavailable
from diststorage.core.ids import new_id
from diststorage.core.policy import RedundancyPolicy, parse_policy
from diststorage.core.settings import GatewaySettings
from diststorage.core.worker import BUSY, Figures, Step, WorkerState
from diststorage.erasure import Codec, codec_for
from diststorage.gateway.blockwire import put_block_message
from diststorage.gateway.inventory import Inventory
from diststorage.gateway.janitor import Janitor
from diststorage.gateway.nodeclient import ChunkUpload, NodeClients
from diststorage.gateway.objects.geometry import Geometry
from diststorage.gateway.objects.reader import ObjectReader, SegmentFetcher
from diststorage.gateway.workers.repair_plan import NodeHealth, SegmentPlan, plan_segment
from diststorage.gateway.workers.throttle import RateMeter, TokenBucket
from diststorage.meta import (
    ChunkRef,
    MaintenanceStore,
    NodeLifecycle,
    NodeLiveness,
    RepairTaskRef,
    SegmentLayout,
    StoredChunk,
)
from diststorage.placement import rank_nodes

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


class RepairWorker:
    name = "repair"

    def __init__(
        self,
        settings: GatewaySettings,
        maintenance: MaintenanceStore,
        inventory: Inventory,
        clients: NodeClients,
        reader: ObjectReader,
        janitor: Janitor,
        bucket: TokenBucket,
    ) -> None:
        self._settings = settings
        self._maintenance = maintenance
        self._inventory = inventory
        self._clients = clients
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
        if not self._inventory.knows(node_id):
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
        targets = self._targets(f"{info.object_id}/{layout.segment_index}", chunk_bytes, avoid)
        shards = plan.rebuild[: len(targets)]
        if not shards:
            log.info(
                "no node can take a shard of %s segment %d yet",
                info.object_id,
                layout.segment_index,
            )
            return False
        new = [
            StoredChunk(new_id(), node_id, layout.segment_index, shard, chunk_bytes, ())
            for shard, node_id in zip(shards, targets, strict=False)
        ]
        self._in_flight.update(c.chunk_id for c in new)
        try:
            new = await self._write(new, geometry, codec, layout.segment_index, plan, chunk_bytes)
            retire = [
                ChunkRef(c.chunk_id, c.node_id) for c in plan.retire if c.shard_index in shards
            ]
            swapped = await self._maintenance.replace_chunks(info.object_id, retire, new)
        finally:
            self._in_flight.difference_update(c.chunk_id for c in new)
        if not swapped:
            # The object changed meanwhile: these copies belong to nothing.
            await self._janitor.delete_now([ChunkRef(c.chunk_id, c.node_id) for c in new])
            return False
        self._janitor.delete_after_reads(info.object_id, retire)
        self.counters.chunks_repaired += len(new)
        for chunk in new:
            self._inventory.note_used(chunk.node_id, chunk.size_bytes)
        return len(shards) == len(plan.rebuild)

    def _targets(self, placement_key: str, chunk_bytes: int, avoid: frozenset[str]) -> list[str]:
        """Writable nodes for rebuilt chunks, the least used (by share of capacity) first.

        Unlike new writes, repair and moves fill the emptiest nodes first: that is what
        fills a replacement node and evens out a cluster after nodes are added. The
        rendezvous rank breaks ties, and each chunk written counts at once.
        """
        candidates = [c for c in self._inventory.writable_candidates() if c.node_id not in avoid]
        ranked = rank_nodes(candidates, placement_key + "/repair", chunk_bytes)
        order = {node_id: position for position, node_id in enumerate(ranked)}
        return sorted(ranked, key=lambda n: (self._inventory.used_share(n), order[n]))

    async def _write(
        self,
        new: Sequence[StoredChunk],
        geometry: Geometry,
        codec: Codec,
        segment: int,
        plan: SegmentPlan,
        chunk_bytes: int,
    ) -> list[StoredChunk]:
        """Streams the rebuilt blocks into the new chunks; returns them with their CRCs."""
        uploads: list[ChunkUpload] = []
        crcs: list[list[int]] = [[] for _ in new]
        fetcher = SegmentFetcher(
            self._reader,
            codec,
            geometry,
            segment,
            dict(plan.sources),
            last_stripe=geometry.segment_stripe_range(segment)[-1],
        )
        try:
            for chunk in new:
                client = self._clients.get(chunk.node_id)
                if client is None:
                    raise NodeUnavailable(f"node {chunk.node_id[:8]} is no longer known")
                uploads.append(await client.start_put(chunk.chunk_id, chunk_bytes))
            for stripe in geometry.segment_stripe_range(segment):
                blocks = codec.encode(await fetcher.stripe(stripe))
                for index, (chunk, upload) in enumerate(zip(new, uploads, strict=True)):
                    block = blocks[chunk.shard_index]
                    crc = crc32c.crc32c(block)
                    await self._bucket.take(len(block))
                    await upload.send(put_block_message(block, crc))
                    crcs[index].append(crc)
                    self.meter.add(len(block))
            for upload in uploads:
                await upload.finish()
        except BaseException:
            for upload in uploads:
                upload.cancel()
            refs = [ChunkRef(c.chunk_id, c.node_id) for c in new]
            await asyncio.shield(self._janitor.delete_now(refs))
            raise
        finally:
            await fetcher.close()
        return [
            StoredChunk(
                c.chunk_id, c.node_id, c.segment_index, c.shard_index, chunk_bytes, tuple(k)
            )
            for c, k in zip(new, crcs, strict=True)
        ]
