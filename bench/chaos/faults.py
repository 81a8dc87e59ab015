"""Faults within the redundancy budget: SIGKILL + restart, and SIGSTOP + SIGCONT, of random nodes.

Exactly these node faults, through ``diststorage.testing.Faults``: a node is killed with
SIGKILL and later started again on the same data folder and port, or paused with SIGSTOP and
later continued with SIGCONT (gateway and database faults: ``service_faults.py``). No file
is corrupted, no network fault is injected.

The budget is what a stripe can lose, M shards of ec:K+M, and a fault starts only while it
holds:

- nodes: a node counts as unavailable from the signal until every gateway up has heard a
  heartbeat from it after it was restarted or continued, and fewer than ``budget_nodes`` (M)
  nodes may be unavailable. So with ec:4+2 no more than 2 nodes are ever down, paused or still
  starting at once.
- shards (the default; ``FaultPlan.budget = "nodes"`` drops it): a write that lost a node
  mid-stream commits a shard short and stays so until repair restores it, so a node that is
  back does not give its budget back to such stripes at once. A new fault starts only when
  every gateway up counts every node this script holds down as unavailable and reports that
  every stripe short of a shard can still lose one more (``fewest_spare_shards`` of
  ``/_/repair``). A stripe short for another reason (a write a full node refused) counts too.
  A write in flight when the figure is read may still commit a shard short afterwards; the
  report tells such objects apart.

Each fault is held for a random time, some shorter and some longer than the gateway's repair
grace, and faults start at random gaps; none starts while ``hold`` says so (a node being
filled up, see ``filler.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

from bench.chaos.control import Control
from diststorage.local import LocalCluster
from diststorage.testing import Faults

TICK_S = 0.25
BACK_TIMEOUT_S = 30.0
# Without a last_heartbeat field, a node counts as back this long after it was seen "up".
BACK_WITHOUT_HEARTBEAT_S = 2.0


class NodeState(StrEnum):
    OK = "ok"
    KILLED = "killed"
    PAUSED = "paused"
    RECOVERING = "recovering"


@dataclass(frozen=True)
class FaultPlan:
    budget_nodes: int
    hold_s: tuple[float, float]
    gap_s: tuple[float, float]
    kill_share: float = 0.5
    budget: Literal["shards", "nodes"] = "shards"


@dataclass
class _Node:
    index: int
    address: str
    state: NodeState = NodeState.OK
    until: float = 0.0
    lifted_at: float = 0.0
    lifted_wall: dt.datetime | None = None
    late_reported: bool = False


@dataclass
class FaultInjector:
    """Injects faults into ``cluster`` for a while, then lifts them all. ``clock`` gives the
    run's seconds, for the event log; ``say`` prints progress."""

    cluster: LocalCluster
    control: Control
    plan: FaultPlan
    rng: random.Random
    clock: Callable[[], float]
    say: Callable[[str], None]
    # While this is true no new fault starts.
    hold: Callable[[], bool] = lambda: False
    events: list[str] = field(default_factory=list)
    kills: int = 0
    pauses: int = 0
    max_unavailable: int = 0
    late_nodes: set[int] = field(default_factory=set)
    # Faults that were due but waited for repair to give the stripes their spare shard back.
    held_back: int = 0
    _holding: bool = False
    _nodes: list[_Node] = field(default_factory=list)
    _next_fault_at: float = 0.0
    _faults: Faults = field(init=False)

    def __post_init__(self) -> None:
        self._faults = Faults(self.cluster)
        host = self.cluster.host
        self._nodes = [_Node(i, f"{host}:{port}") for i, port in enumerate(self.cluster.node_ports)]

    @property
    def unavailable(self) -> int:
        return sum(1 for n in self._nodes if n.state is not NodeState.OK)

    def healthy_addresses(self) -> set[str]:
        """The nodes no fault holds or has just released."""
        return {n.address for n in self._nodes if n.state is NodeState.OK}

    def fault_state(self) -> tuple[int, int]:
        """(faults started so far, nodes unavailable now)."""
        return self.kills + self.pauses, self.unavailable

    async def run(self, duration_s: float) -> None:
        """Starts and lifts faults for ``duration_s``; the faults still held are left in place
        (call ``lift_all``)."""
        deadline = time.monotonic() + duration_s
        self._next_fault_at = time.monotonic() + self._draw(self.plan.gap_s)
        while time.monotonic() < deadline:
            await self._lift_due(time.monotonic())
            await self._check_recovering()
            if time.monotonic() >= self._next_fault_at and not self.hold():
                await self._maybe_start_fault()
            await asyncio.sleep(TICK_S)

    async def lift_all(self, timeout_s: float = 60.0) -> bool:
        """Restarts or continues every faulted node and waits until all are back."""
        await self._lift_due(float("inf"))
        deadline = time.monotonic() + timeout_s
        while self.unavailable and time.monotonic() < deadline:
            await asyncio.sleep(TICK_S)
            await self._check_recovering()
        return self.unavailable == 0

    # -- faults ---------------------------------------------------------------------------------

    async def _maybe_start_fault(self) -> None:
        healthy = [n for n in self._nodes if n.state is NodeState.OK]
        if self.unavailable >= self.plan.budget_nodes or not healthy:
            return  # wait for a node to come back, then start one straight away
        if self.plan.budget == "shards" and not await self._every_stripe_can_lose_a_node():
            if not self._holding:
                self._holding = True
                self.held_back += 1
            return  # wait for repair, then start one straight away
        self._holding = False
        node = self.rng.choice(healthy)
        node.until = time.monotonic() + self._draw(self.plan.hold_s)
        held_s = node.until - time.monotonic()
        if self.rng.random() < self.plan.kill_share:
            await asyncio.to_thread(self._faults.kill_node, node.index)
            node.state, action = NodeState.KILLED, "kill"
            self.kills += 1
        else:
            self._faults.pause_node(node.index)
            node.state, action = NodeState.PAUSED, "pause"
            self.pauses += 1
        self.max_unavailable = max(self.max_unavailable, self.unavailable)
        self._event(action, node, held_s)
        self._next_fault_at = time.monotonic() + self._draw(self.plan.gap_s)

    async def _lift_due(self, now: float) -> None:
        for node in self._nodes:
            if node.state in (NodeState.KILLED, NodeState.PAUSED) and node.until <= now:
                await self._lift(node)

    async def _lift(self, node: _Node) -> None:
        if node.state is NodeState.KILLED:
            await asyncio.to_thread(self._faults.restart_node, node.index)
            action = "restart"
        else:
            self._faults.resume_node(node.index)
            action = "continue"
        node.state = NodeState.RECOVERING
        node.lifted_at = time.monotonic()
        node.lifted_wall = dt.datetime.now(dt.UTC)
        node.late_reported = False
        self._event(action, node)

    async def _check_recovering(self) -> None:
        recovering = [n for n in self._nodes if n.state is NodeState.RECOVERING]
        if not recovering:
            return
        views = await self.control.node_views()
        for node in recovering:
            waited_s = time.monotonic() - node.lifted_at
            if views and all(
                view is not None and _is_back(view.get(node.address), node, waited_s)
                for view in views
            ):
                node.state = NodeState.OK
                self._event("back", node, waited_s)
            elif waited_s > BACK_TIMEOUT_S and not node.late_reported:
                node.late_reported = True
                self.late_nodes.add(node.index)
                self._event("NOT BACK", node, waited_s)

    async def _every_stripe_can_lose_a_node(self) -> bool:
        """Every gateway up counts every node held down here as unavailable, and says every
        stripe short of a shard can still lose one more."""
        urls = list(self.control.live_urls())
        if not urls:
            return False
        for url in urls:
            if not await self._gateway_allows_a_fault(url):
                return False
        return True

    async def _gateway_allows_a_fault(self, url: str) -> bool:
        nodes = await self.control.get_json(url, "/_/nodes")
        repair = await self.control.get_json(url, "/_/repair")
        if not isinstance(nodes, list) or not nodes or not isinstance(repair, dict):
            return False
        views = {str(v.get("address")): v for v in nodes if isinstance(v, dict)}
        unavailable = set(repair.get("unavailable_nodes") or ())
        for node in self._nodes:
            if node.state in (NodeState.KILLED, NodeState.PAUSED):
                view = views.get(node.address)
                if view is None or view.get("id") not in unavailable:
                    return False  # not noticed yet: the spare figure still counts it
        spare = repair.get("fewest_spare_shards")
        return spare is None or (isinstance(spare, int) and spare >= 1)

    # -- helpers --------------------------------------------------------------------------------

    def _draw(self, bounds: tuple[float, float]) -> float:
        return self.rng.uniform(*bounds)

    def _event(self, action: str, node: _Node, seconds: float | None = None) -> None:
        suffix = ""
        if action in ("kill", "pause") and seconds is not None:
            suffix = f" for {seconds:.1f} s"
        elif seconds is not None:
            suffix = f" after {seconds:.1f} s"
        text = (
            f"t={self.clock():7.1f}s  {action} node{node.index}{suffix}"
            f"  (unavailable: {self.unavailable})"
        )
        self.events.append(text)
        self.say(f"fault: {text}")


def _is_back(view: dict[str, Any] | None, node: _Node, waited_s: float) -> bool:
    """The gateway says the node is up and has heard from it since it was lifted."""
    if view is None or view.get("state") != "up":
        return False
    heard = view.get("last_heartbeat")
    if not isinstance(heard, str):
        return waited_s >= BACK_WITHOUT_HEARTBEAT_S
    try:
        heard_at = dt.datetime.fromisoformat(heard)
    except ValueError:
        return waited_s >= BACK_WITHOUT_HEARTBEAT_S
    return node.lifted_wall is not None and heard_at > node.lifted_wall
