"""Evening out node usage after nodes are added (``diststorage rebalance``).

A rebalance pass marks chunks on the fullest nodes (by share of capacity) to be moved, until
each is within a tolerance of the cluster's mean; the repair worker then moves them at its
throttled pace and its placement, weighted by free space, sends them mostly to the emptiest
nodes. Marks live in the database, so a pass survives a restart.
"""

from __future__ import annotations

from dataclasses import dataclass

from diststorage.gateway.inventory import Inventory
from diststorage.meta import ChunkState, MaintenanceStore

# A node using no more than this much above the mean share of capacity is left alone
# (relative: 0.10 means 10 % above the mean).
TOLERANCE = 0.10
MAX_CHUNKS_PER_NODE = 10_000


@dataclass(frozen=True, slots=True)
class RebalancePlan:
    chunks: int
    bytes: int
    nodes: tuple[str, ...]


async def plan_rebalance(inventory: Inventory, maintenance: MaintenanceStore) -> RebalancePlan:
    """Marks chunks to move off nodes fuller than the mean; returns what was marked."""
    writable = [v.info for v in inventory.views() if inventory.is_writable(v.info.node_id)]
    capacity = sum(n.capacity_bytes for n in writable)
    if len(writable) < 2 or capacity <= 0:
        return RebalancePlan(0, 0, ())
    mean = sum(n.used_bytes for n in writable) / capacity
    marked_chunks = 0
    marked_bytes = 0
    sources: list[str] = []
    for node in writable:
        if node.capacity_bytes <= 0:
            continue
        if node.used_bytes <= mean * (1 + TOLERANCE) * node.capacity_bytes:
            continue
        target = node.used_bytes - mean * node.capacity_bytes
        picked: list[str] = []
        picked_bytes = 0
        for chunk_id, size in await maintenance.movable_chunks(node.node_id, MAX_CHUNKS_PER_NODE):
            if picked_bytes >= target:
                break
            picked.append(chunk_id)
            picked_bytes += size
        if picked:
            marked_chunks += await maintenance.mark_chunks(picked, ChunkState.MOVE)
            marked_bytes += picked_bytes
            sources.append(node.node_id)
    return RebalancePlan(marked_chunks, marked_bytes, tuple(sources))
