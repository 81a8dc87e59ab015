"""The node table: heartbeats in, liveness and free space out.

Liveness is judged on this gateway's monotonic clock from when it last heard a node, so clock
skew between machines cannot make a dead node look alive. The table is persisted so a
restarted gateway knows every node it ever saw (they count as down until they heartbeat).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import grpc.aio

from diststorage.meta import MetadataStore, NodeInfo
from diststorage.placement import Candidate
from diststorage.proto import storage_pb2 as pb
from diststorage.proto.storage_pb2_grpc import InventoryServicer

log = logging.getLogger(__name__)

# A heartbeat is persisted at least this often per node; in between it only updates memory.
PERSIST_INTERVAL_S = 15.0


@dataclass(frozen=True, slots=True)
class NodeView:
    info: NodeInfo
    live: bool

    @property
    def state(self) -> str:
        return "up" if self.live else "down"


class Inventory:
    def __init__(
        self,
        store: MetadataStore,
        node_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._node_timeout_s = node_timeout_s
        self._clock = clock
        self._nodes: dict[str, NodeInfo] = {}
        self._heard_at: dict[str, float] = {}
        self._persisted_at: dict[str, float] = {}

    async def load(self) -> None:
        for info in await self._store.list_nodes():
            self._nodes[info.node_id] = info

    async def heartbeat(self, status: pb.NodeStatus) -> None:
        now = self._clock()
        known = self._nodes.get(status.node_id)
        wall = datetime.now(UTC)
        info = NodeInfo(
            node_id=status.node_id,
            address=status.address,
            capacity_bytes=status.capacity_bytes,
            used_bytes=status.used_bytes,
            free_bytes=status.free_bytes,
            chunk_count=status.chunk_count,
            first_seen=known.first_seen if known else wall,
            last_heartbeat=wall,
        )
        self._nodes[status.node_id] = info
        was_live = self.is_live(status.node_id)
        self._heard_at[status.node_id] = now
        last_persist = self._persisted_at.get(status.node_id)
        moved = known is None or known.address != info.address
        if moved or not was_live or last_persist is None or now - last_persist > PERSIST_INTERVAL_S:
            if moved or not was_live:
                log.info("node %s is up at %s", status.node_id[:8], status.address)
            self._persisted_at[status.node_id] = now
            await self._store.record_node(info)

    def is_live(self, node_id: str) -> bool:
        heard = self._heard_at.get(node_id)
        return heard is not None and self._clock() - heard <= self._node_timeout_s

    def address_of(self, node_id: str) -> str | None:
        info = self._nodes.get(node_id)
        return info.address if info else None

    def live_candidates(self) -> list[Candidate]:
        return [
            Candidate(node_id, info.free_bytes)
            for node_id, info in self._nodes.items()
            if self.is_live(node_id)
        ]

    def note_used(self, node_id: str, size_bytes: int) -> None:
        """Charges bytes just written so placement sees them before the next heartbeat."""
        info = self._nodes.get(node_id)
        if info is not None:
            self._nodes[node_id] = replace(
                info,
                free_bytes=max(0, info.free_bytes - size_bytes),
                used_bytes=info.used_bytes + size_bytes,
            )

    def views(self) -> list[NodeView]:
        return [
            NodeView(info, self.is_live(node_id))
            for node_id, info in sorted(self._nodes.items(), key=lambda kv: kv[1].address)
        ]

    def live_count(self) -> int:
        return sum(1 for node_id in self._nodes if self.is_live(node_id))


class HeartbeatServicer(InventoryServicer):
    def __init__(self, inventory: Inventory, gateway_id: str) -> None:
        self._inventory = inventory
        self._gateway_id = gateway_id

    async def Heartbeat(  # noqa: N802 (gRPC method name)
        self, request: pb.HeartbeatRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> pb.HeartbeatResponse:
        await self._inventory.heartbeat(request.status)
        return pb.HeartbeatResponse(gateway_id=self._gateway_id)
