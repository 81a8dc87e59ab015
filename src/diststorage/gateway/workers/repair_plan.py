"""What one segment needs to be back at full redundancy. Pure: no I/O.

Each shard index of a segment must have one sound chunk on its own healthy node. Given the
segment's chunk rows and what is known of each node, the plan says which shards to rebuild,
which chunk rows they retire, and which chunks may serve as sources meanwhile.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from diststorage.meta import ChunkState, StoredChunk


class NodeHealth(enum.Enum):
    HEALTHY = "healthy"  # up and active: a fine home for a shard
    LEAVING = "leaving"  # up but draining: readable, but its shards must move
    WAITING = "waiting"  # suspect, or down within the repair grace: may come back
    LOST = "lost"  # down past the grace, or forgotten: its shards are gone


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    rebuild: tuple[int, ...]  # shard indices that need a new chunk
    retire: tuple[StoredChunk, ...]  # rows the new chunks replace
    sources: dict[int, StoredChunk]  # one readable chunk per shard index, sound ones first
    keep_nodes: frozenset[str]  # nodes holding the shards that stay
    waiting: int  # shards on nodes that may come back; not rebuilt yet
    margin: int  # shards that stay, minus shards needed to read

    @property
    def complete(self) -> bool:
        return not self.rebuild


def plan_segment(
    chunks: Sequence[StoredChunk],
    total_shards: int,
    needed_to_read: int,
    health: Callable[[str], NodeHealth],
) -> SegmentPlan:
    keep: dict[int, StoredChunk] = {}
    keep_nodes: set[str] = set()
    waiting = 0
    sources: dict[int, StoredChunk] = {}
    for chunk in sorted(chunks, key=lambda c: c.shard_index):
        node = health(chunk.node_id)
        # A damaged chunk is still a source of last resort: its blocks are verified one by
        # one, and most of them may be sound.
        if node in (NodeHealth.HEALTHY, NodeHealth.LEAVING):
            sources.setdefault(chunk.shard_index, chunk)
        if chunk.state != ChunkState.OK or chunk.shard_index in keep or chunk.node_id in keep_nodes:
            continue
        if node == NodeHealth.HEALTHY:
            keep[chunk.shard_index] = chunk
            keep_nodes.add(chunk.node_id)
        elif node == NodeHealth.WAITING:
            # Not rebuilt within the grace period; counted as staying for now.
            keep[chunk.shard_index] = chunk
            keep_nodes.add(chunk.node_id)
            waiting += 1
    rebuild = tuple(shard for shard in range(total_shards) if shard not in keep)
    retire = tuple(c for c in chunks if c.shard_index in rebuild)
    return SegmentPlan(
        rebuild=rebuild,
        retire=retire,
        sources=sources,
        keep_nodes=frozenset(keep_nodes),
        waiting=waiting,
        margin=len(keep) - waiting - needed_to_read,
    )
