"""The node table: heartbeats in, liveness and free space out.

Liveness is judged on this gateway's monotonic clock from when it last heard a node, so clock
skew between machines cannot make a dead node look alive, less the time this gateway's own
process stood still meanwhile (``core.stalls``): a gateway starved of CPU did not hear its
nodes because it could not listen, not because they fell silent::

    up ──(silent > suspect_s)──▶ suspect ──(silent > timeout_s)──▶ down
     ▲                                                               │
     └───────────────────────── heartbeat ◀─────────────────────────┘

Suspect nodes get no new chunks but are still read from (after the others); down nodes are
neither written nor read. A node down longer than the repair grace is *lost*: repair rebuilds
its chunks elsewhere. Separately, an operator may set a node *draining*: it takes no new
chunks and repair moves every chunk off it. The table is persisted, so a restarted gateway
knows every node it ever saw (they count as down, from the restart on, until they heartbeat).

Admission: under open admission a node never seen before joins on its first heartbeat. Under
manual admission it is recorded *pending*: listed, with its liveness, but not live, up or
writable to the rest of the gateway (no shards, no reads, no audits, not counted in health),
until an operator accepts it. The lifecycle lives in the metadata database and every persisted
beat reads it back, so an acceptance (or a drain) made through one gateway reaches the others:
a pending node's beats are persisted each time, so its acceptance is seen at its next beat.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from diststorage.core.clock import SYSTEM_CLOCK, Clock, utc_now
from diststorage.core.stalls import NoStalls, Stalls
from diststorage.meta import MetadataStore, NodeInfo, NodeLifecycle, NodeLiveness, NodeReport
from diststorage.placement import Candidate
from diststorage.placement.weights import free_space_cap

log = logging.getLogger(__name__)

# A heartbeat is persisted at least this often per node; in between it only updates memory.
PERSIST_INTERVAL_S = 15.0
# What this gateway wrote to a node fades from its floor under the node's used bytes with this
# time constant: long next to a heartbeat (which counts the writes of an honest node), short
# enough that bytes deleted since stop counting.
WRITTEN_MEMORY_S = 600.0


@dataclass(frozen=True, slots=True)
class NodeView:
    info: NodeInfo
    state: NodeLiveness
    lifecycle: NodeLifecycle

    @property
    def live(self) -> bool:
        """Heard recently, and admitted (a pending node counts as no live node)."""
        return self.state != NodeLiveness.DOWN and self.lifecycle != NodeLifecycle.PENDING


class Inventory:
    def __init__(
        self,
        store: MetadataStore,
        node_timeout_s: float,
        node_suspect_s: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
        admit_new_nodes: bool = True,
        stalls: Stalls | None = None,
    ) -> None:
        """``admit_new_nodes``: open admission (a new node joins on its first beat); without
        it a new node is pending until accepted. ``stalls``: how long this process stood
        still, discounted from every node's silence."""
        self._store = store
        self._admit_new_nodes = admit_new_nodes
        self._pending_logged: set[str] = set()
        self._node_timeout_s = node_timeout_s
        self._node_suspect_s = node_suspect_s if node_suspect_s is not None else node_timeout_s
        self._clock = clock
        self._stalls: Stalls = stalls if stalls is not None else NoStalls()
        self._started_at = clock.monotonic()
        self._started_stalled_s = self._stalls.stalled_s()
        self._nodes: dict[str, NodeInfo] = {}
        # When each node was last heard, and how long this process had stood still by then.
        self._heard_at: dict[str, tuple[float, float]] = {}
        self._persisted_at: dict[str, float] = {}
        # Bytes this gateway wrote to each node lately, fading (WRITTEN_MEMORY_S), and when
        # last counted: a floor under what the node says it holds.
        self._written: dict[str, tuple[float, float]] = {}
        self._on_return: list[Callable[[str], None]] = []
        self.returns = 0  # how many times a node became up again; workers watch it

    async def load(self) -> None:
        for info in await self._store.list_nodes():
            self._nodes[info.node_id] = info

    async def heartbeat(self, status: NodeReport) -> None:
        """Records the node as heard now; persists its row when it is new, moved, back,
        pending, or not persisted for PERSIST_INTERVAL_S, and takes the lifecycle the
        database holds. Raises Unavailable if the database is."""
        node_id = status.node_id
        now = self._clock.monotonic()
        known = self._nodes.get(node_id)
        wall = utc_now(self._clock)
        joining = NodeLifecycle.ACTIVE if self._admit_new_nodes else NodeLifecycle.PENDING
        lifecycle = known.lifecycle if known else joining
        if self._admit_new_nodes and lifecycle == NodeLifecycle.PENDING:
            lifecycle = NodeLifecycle.ACTIVE
        info = NodeInfo(
            # A NodeInfo is the node's report and what this table knows besides.
            **asdict(status),
            first_seen=known.first_seen if known else wall,
            last_heartbeat=wall,
            lifecycle=lifecycle,
        )
        self._nodes[node_id] = info
        # By its beats alone: a pending node is heard like any other.
        was_live = self._heard_within(node_id, self._node_timeout_s)
        was_up = self._heard_within(node_id, self._node_suspect_s)
        self._heard_at[node_id] = (now, self._stalls.stalled_s())
        last_persist = self._persisted_at.get(node_id)
        moved = known is None or known.address != info.address
        changed = known is not None and known.lifecycle != info.lifecycle
        if not was_up and lifecycle != NodeLifecycle.PENDING:
            self.returns += 1
        if not was_live and lifecycle != NodeLifecycle.PENDING:
            for callback in self._on_return:
                callback(node_id)
        stale = last_persist is None or now - last_persist > PERSIST_INTERVAL_S
        if moved or changed or not was_live or stale or lifecycle == NodeLifecycle.PENDING:
            if (moved or not was_live) and lifecycle != NodeLifecycle.PENDING:
                log.info("node %s is up at %s", node_id[:8], status.address)
            self._persisted_at[node_id] = now
            try:
                stored = await self._store.record_node(info, admit=self._admit_new_nodes)
            except BaseException:
                # Not written: the next beat writes it, rather than one PERSIST_INTERVAL_S on
                # (a new node's row missing that long is a new node to a restarted gateway).
                self._persisted_at.pop(node_id, None)
                raise
            self._take_lifecycle(node_id, stored)

    def _take_lifecycle(self, node_id: str, stored: NodeLifecycle) -> None:
        """Adopts the lifecycle the database holds (an operator may have changed it through
        another gateway); logs a pending node once, and its acceptance."""
        info = self._nodes.get(node_id)
        if info is None:
            return
        if stored == NodeLifecycle.PENDING:
            if node_id not in self._pending_logged:
                self._pending_logged.add(node_id)
                log.warning(
                    "node %s at %s is pending: it gets no shards until an operator accepts it "
                    "(`diststorage node accept %s`)",
                    node_id,
                    info.address,
                    node_id,
                )
        elif info.lifecycle == NodeLifecycle.PENDING or node_id in self._pending_logged:
            self._pending_logged.discard(node_id)
            log.info("node %s is accepted, up at %s", node_id[:8], info.address)
            self._admitted(node_id)
        if stored != info.lifecycle:
            self._nodes[node_id] = replace(info, lifecycle=stored)

    def _admitted(self, node_id: str) -> None:
        """A pending node became a member: to the workers it is a node that came back."""
        if self._heard_within(node_id, self._node_suspect_s):
            self.returns += 1
        for callback in self._on_return:
            callback(node_id)

    def accept(self, node_id: str) -> None:
        """The operator accepted the node (already recorded in the database)."""
        info = self._nodes.get(node_id)
        if info is not None and info.lifecycle == NodeLifecycle.PENDING:
            self._take_lifecycle(node_id, NodeLifecycle.ACTIVE)

    def _silent_s(self, node_id: str) -> float | None:
        """Seconds since the node was last heard, less this process's stalls since; None
        for a node not heard since this gateway started."""
        heard = self._heard_at.get(node_id)
        if heard is None:
            return None
        heard_at, stalled_then = heard
        stalled_since = self._stalls.stalled_s() - stalled_then
        return self._clock.monotonic() - heard_at - stalled_since

    def _heard_within(self, node_id: str, seconds: float) -> bool:
        silent_s = self._silent_s(node_id)
        return silent_s is not None and silent_s <= seconds

    def on_return(self, callback: Callable[[str], None]) -> None:
        """Calls ``callback(node_id)`` whenever a node that was down heartbeats again."""
        self._on_return.append(callback)

    def state(self, node_id: str) -> NodeLiveness:
        silent_s = self._silent_s(node_id)
        if silent_s is None:
            return NodeLiveness.DOWN
        if silent_s <= self._node_suspect_s:
            return NodeLiveness.UP
        return NodeLiveness.SUSPECT if silent_s <= self._node_timeout_s else NodeLiveness.DOWN

    def is_live(self, node_id: str) -> bool:
        """Up or suspect: worth reading from, not yet declared down; never a pending node."""
        return self.state(node_id) != NodeLiveness.DOWN and not self.is_pending(node_id)

    def is_up(self, node_id: str) -> bool:
        """Heard within the suspect time; never a pending node."""
        return self.state(node_id) == NodeLiveness.UP and not self.is_pending(node_id)

    def is_pending(self, node_id: str) -> bool:
        """Heard under manual admission and not accepted yet."""
        return self.lifecycle(node_id) == NodeLifecycle.PENDING

    def down_for_s(self, node_id: str) -> float | None:
        """How long the node has been declared down; None while it is up or suspect.

        For a node not heard since this gateway started, counted from start + timeout (it is
        reported down at once, but repair's grace runs only from there): negative meanwhile.
        """
        if self.state(node_id) != NodeLiveness.DOWN:
            return None
        silent_s = self._silent_s(node_id)
        if silent_s is None:
            stalled_since = self._stalls.stalled_s() - self._started_stalled_s
            silent_s = self._clock.monotonic() - self._started_at - stalled_since
        return silent_s - self._node_timeout_s

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
        self._pending_logged.discard(node_id)
        self._written.pop(node_id, None)
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
        now_s = self._clock.monotonic()
        if info is not None:
            self._nodes[node_id] = replace(info, free_bytes=max(0, info.free_bytes - size_bytes))
            self._written[node_id] = (self._written_lately(node_id) + size_bytes, now_s)

    def _written_lately(self, node_id: str) -> float:
        bytes_written, at_s = self._written.get(node_id, (0.0, 0.0))
        faded = math.exp(-(self._clock.monotonic() - at_s) / WRITTEN_MEMORY_S)
        return bytes_written * faded

    def used_share(self, node_id: str) -> float:
        """Share of its capacity the node uses, as far as this gateway can vouch for it; 1.0
        when unknown or without capacity. Repair and moves fill the lowest share first.

        Both figures are the node's word, so both are bounded: it holds at least what this
        gateway wrote to it lately (fading over WRITTEN_MEMORY_S), and its room beyond that
        counts for no more than the placement cap over the writable nodes
        (placement/weights.py). A node that reports a petabyte free and nothing held is
        filled like an honest empty node with that cap free, not before every other node
        for ever: at most about the cap's worth of bytes per WRITTEN_MEMORY_S before honest
        nodes come first again.
        """
        info = self._nodes.get(node_id)
        if info is None or info.capacity_bytes <= 0:
            return 1.0
        used = max(float(info.used_bytes), self._written_lately(node_id))
        free = info.free_bytes
        writable = [c.free_bytes for c in self.writable_candidates()]
        if writable:
            free = min(free, free_space_cap(writable))
        capacity = min(info.capacity_bytes, used + free)
        return 1.0 if capacity <= 0 else min(used / capacity, 1.0)

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
