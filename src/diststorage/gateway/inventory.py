"""The node table: heartbeats in, liveness and free space out.

Liveness is judged on this gateway's monotonic clock from when it last heard a node, so clock
skew between machines cannot make a dead node look alive::

    up ──(silent > suspect_s)──▶ suspect ──(silent > timeout_s)──▶ down
     ▲                                                               │
     └───────────────────────── heartbeat ◀─────────────────────────┘

Suspect nodes get no new chunks but are still read from (after the others); down nodes are
neither written nor read. A node down longer than the repair grace is *lost*: repair rebuilds
its chunks elsewhere. Separately, an operator may set a node *draining*: it takes no new
chunks and repair moves every chunk off it. The table is persisted, so a restarted gateway
knows every node it ever saw (they count as down, from the restart on, until they heartbeat).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from diststorage.core.clock import SYSTEM_CLOCK, Clock, utc_now
from diststorage.meta import MetadataStore, NodeInfo, NodeLifecycle, NodeLiveness, NodeReport
from diststorage.placement import Candidate

log = logging.getLogger(__name__)

# A heartbeat is persisted at least this often per node; in between it only updates memory.
PERSIST_INTERVAL_S = 15.0


@dataclass(frozen=True, slots=True)
class NodeView:
    info: NodeInfo
    state: NodeLiveness
    lifecycle: NodeLifecycle

    @property
    def live(self) -> bool:
        return self.state != NodeLiveness.DOWN


class Inventory:
    def __init__(
        self,
        store: MetadataStore,
        node_timeout_s: float,
        node_suspect_s: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._store = store
        self._node_timeout_s = node_timeout_s
        self._node_suspect_s = node_suspect_s if node_suspect_s is not None else node_timeout_s
        self._clock = clock
        self._started_at = clock.monotonic()
        self._nodes: dict[str, NodeInfo] = {}
        self._heard_at: dict[str, float] = {}
        self._persisted_at: dict[str, float] = {}
        self._on_return: list[Callable[[str], None]] = []
        self.returns = 0  # how many times a node became up again; workers watch it

    async def load(self) -> None:
        for info in await self._store.list_nodes():
            self._nodes[info.node_id] = info

    async def heartbeat(self, status: NodeReport) -> None:
        """Records the node as heard now; persists its row when it is new, moved, back, or
        not persisted for PERSIST_INTERVAL_S. Raises Unavailable if the database is."""
        now = self._clock.monotonic()
        known = self._nodes.get(status.node_id)
        wall = utc_now(self._clock)
        info = NodeInfo(
            # A NodeInfo is the node's report and what this table knows besides.
            **asdict(status),
            first_seen=known.first_seen if known else wall,
            last_heartbeat=wall,
            lifecycle=known.lifecycle if known else NodeLifecycle.ACTIVE,
        )
        self._nodes[status.node_id] = info
        was_live = self.is_live(status.node_id)
        was_up = self.is_up(status.node_id)
        self._heard_at[status.node_id] = now
        last_persist = self._persisted_at.get(status.node_id)
        moved = known is None or known.address != info.address
        if not was_up:
            self.returns += 1
        if not was_live:
            for callback in self._on_return:
                callback(status.node_id)
        if moved or not was_live or last_persist is None or now - last_persist > PERSIST_INTERVAL_S:
            if moved or not was_live:
                log.info("node %s is up at %s", status.node_id[:8], status.address)
            self._persisted_at[status.node_id] = now
            await self._store.record_node(info)

    def on_return(self, callback: Callable[[str], None]) -> None:
        """Calls ``callback(node_id)`` whenever a node that was down heartbeats again."""
        self._on_return.append(callback)

    def state(self, node_id: str) -> NodeLiveness:
        heard = self._heard_at.get(node_id)
        if heard is None:
            return NodeLiveness.DOWN
        silent_s = self._clock.monotonic() - heard
        if silent_s <= self._node_suspect_s:
            return NodeLiveness.UP
        return NodeLiveness.SUSPECT if silent_s <= self._node_timeout_s else NodeLiveness.DOWN

    def is_live(self, node_id: str) -> bool:
        """Up or suspect: worth reading from, not yet declared down."""
        return self.state(node_id) != NodeLiveness.DOWN

    def is_up(self, node_id: str) -> bool:
        return self.state(node_id) == NodeLiveness.UP

    def down_for_s(self, node_id: str) -> float | None:
        """How long the node has been declared down; None while it is up or suspect.

        For a node not heard since this gateway started, counted from start + timeout (it is
        reported down at once, but repair's grace runs only from there): negative meanwhile.
        """
        if self.state(node_id) != NodeLiveness.DOWN:
            return None
        heard = self._heard_at.get(node_id, self._started_at)
        return self._clock.monotonic() - max(heard, self._started_at) - self._node_timeout_s

    def knows(self, node_id: str) -> bool:
        return node_id in self._nodes

    def node_ids(self) -> list[str]:
        return list(self._nodes)

    def lifecycle(self, node_id: str) -> NodeLifecycle:
        info = self._nodes.get(node_id)
        return info.lifecycle if info else NodeLifecycle.ACTIVE

    def is_writable(self, node_id: str) -> bool:
        """Takes new chunks: up, and not draining."""
        return self.is_up(node_id) and self.lifecycle(node_id) == NodeLifecycle.ACTIVE

    def set_lifecycle(self, node_id: str, lifecycle: NodeLifecycle) -> None:
        info = self._nodes.get(node_id)
        if info is not None:
            self._nodes[node_id] = replace(info, lifecycle=lifecycle)

    def forget(self, node_id: str) -> None:
        self._nodes.pop(node_id, None)
        self._heard_at.pop(node_id, None)
        self._persisted_at.pop(node_id, None)

    def address_of(self, node_id: str) -> str | None:
        info = self._nodes.get(node_id)
        return info.address if info else None

    def writable_candidates(self) -> list[Candidate]:
        return [
            Candidate(node_id, info.free_bytes)
            for node_id, info in self._nodes.items()
            if self.is_writable(node_id)
        ]

    def note_used(self, node_id: str, size_bytes: int) -> None:
        """Charges bytes just written to the node's free space, so placement sees them before
        the next heartbeat.

        Used bytes stay as the node reported them: a heartbeat that already counts the chunk
        can arrive before this charge, and a node must never be shown holding more than it
        does (or than its capacity). Free space undercounted that way only errs on the safe
        side, for a second.
        """
        info = self._nodes.get(node_id)
        if info is not None:
            self._nodes[node_id] = replace(info, free_bytes=max(0, info.free_bytes - size_bytes))

    def used_share(self, node_id: str) -> float:
        """Share of its capacity the node uses; 1.0 when unknown or without capacity."""
        info = self._nodes.get(node_id)
        if info is None or info.capacity_bytes <= 0:
            return 1.0
        return info.used_bytes / info.capacity_bytes

    def views(self) -> list[NodeView]:
        return [
            NodeView(info, self.state(node_id), info.lifecycle)
            for node_id, info in sorted(self._nodes.items(), key=lambda kv: kv[1].address)
        ]

    def live_count(self) -> int:
        return sum(1 for node_id in self._nodes if self.is_live(node_id))

    def member_count(self) -> int:
        """Nodes that belong to the cluster for good: known and not draining, up or not."""
        return sum(1 for info in self._nodes.values() if info.lifecycle == NodeLifecycle.ACTIVE)

    def writable_count(self) -> int:
        return sum(1 for node_id in self._nodes if self.is_writable(node_id))
