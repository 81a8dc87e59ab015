"""A node filling up: one node more than the stripes need, with a small ``--capacity``, filled
during the faults until placement must pass it over, then kept full to the end.

Placement weighs nodes by free space, so the mixed load alone never fills a node: the emptier
it gets, the fewer new shards it is given, and deletes free it again. The filler writes
objects with ``X-Redundancy: ec:(N-2)+2`` over all N nodes, one shard on each, the full node
included (a policy as wide as the cluster, within the gateway's default limits on what a
client may ask for), through the gateways as any client would, until the node has less free
space than ``FULL_MARGIN_SHARDS`` such shards (what a heartbeat's lag could still let
through). One at a time, and only with every node up (the policy needs them all); node faults
wait until it is full (``filling``), so no fill object is written short. The fill objects
stay: the audit reads them back with the rest.

While the node is full the load's ec:K+M writes must go to the other nodes: one more than
K+M, so a write has its full width there while at most one other node is out. A write
refused for room (507) with fewer than M nodes out is a write the full node failed
(``runner.py`` names the nodes out in the error's kind; ``judge`` in ``__main__.py``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.chaos.control import Control
from bench.common.load.runner import LoadRunner
from diststorage.local import LocalCluster, free_port

FULL_MARGIN_SHARDS = 3
FILL_PARITY = 2
# Of the faults phase: past this share the filler gives up and node faults start anyway.
FILL_SHARE = 0.6
TICK_S = 0.25
FULL_SAMPLE_S = 2.0
REFUSED_BACKOFF_S = 0.5
FILL_SEED = 0xF111


@dataclass(frozen=True)
class FillPlan:
    capacity_bytes: int
    # What one fill object puts on each node.
    shard_bytes: int


@dataclass
class NodeFiller:
    cluster: LocalCluster
    control: Control
    plan: FillPlan
    clock: Callable[[], float]
    say: Callable[[str], None]
    # PUTs the load has committed so far (to count those made while the node is full).
    load_puts: Callable[[], int]
    index: int | None = None
    address: str = ""
    objects: int = 0
    refusals: Counter[str] = field(default_factory=Counter)
    filled_at_s: float | None = None
    load_puts_at_fill: int | None = None
    # The node's free bytes (fewest any gateway up reports) while full: lowest and highest.
    free_while_full: tuple[int, int] | None = None
    gave_up: bool = False
    # When a gateway first reported another capacity for the node (a restart that lost its
    # --capacity): it was no longer full from then on.
    capacity_lost_at_s: float | None = None
    events: list[str] = field(default_factory=list)

    @property
    def margin_bytes(self) -> int:
        return FULL_MARGIN_SHARDS * self.plan.shard_bytes

    def add_node(self) -> int:
        """Starts the node with its small capacity (blocking); returns its index."""
        port = free_port(self.cluster.host)
        self.index = self.cluster.add_node(port, ["--capacity", str(self.plan.capacity_bytes)])
        self.address = f"{self.cluster.host}:{port}"
        return self.index

    def filling(self) -> bool:
        """The node is being filled: node faults wait."""
        return self.index is not None and self.filled_at_s is None and not self.gave_up

    async def run(self, load: LoadRunner, nodes_out: Callable[[], int], duration_s: float) -> None:
        """Fills the node, then watches its free space, for ``duration_s`` at most."""
        deadline = time.monotonic() + duration_s
        give_up_at = time.monotonic() + duration_s * FILL_SHARE
        rng = random.Random(FILL_SEED)
        while self.filling() and time.monotonic() < deadline:
            if time.monotonic() >= give_up_at:
                self.gave_up = True
                self._event(f"node{self.index} NOT FULL after {duration_s * FILL_SHARE:.0f} s")
                break
            await self._fill_step(load, nodes_out, rng)
        while self.filled_at_s is not None and time.monotonic() < deadline:
            await self._watch_full()
            await asyncio.sleep(min(FULL_SAMPLE_S, max(deadline - time.monotonic(), 0)))

    async def _fill_step(
        self, load: LoadRunner, nodes_out: Callable[[], int], rng: random.Random
    ) -> None:
        free = await self.free_bytes()
        if free is None or nodes_out():
            await asyncio.sleep(TICK_S)
            return
        if free < self.margin_bytes:
            self.filled_at_s = self.clock()
            self.load_puts_at_fill = self.load_puts()
            self.free_while_full = (free, free)
            self._event(
                f"node{self.index} full: {free >> 10} KiB free of"
                f" {self.plan.capacity_bytes >> 20} MiB after {self.objects} fill objects"
            )
            return
        key = f"chaos/fill/{self.objects + sum(self.refusals.values()):05d}"
        data_shards = self.cluster.nodes - FILL_PARITY
        kind = await load.put_with_policy(
            key, self.plan.shard_bytes * data_shards, rng, f"ec:{data_shards}+{FILL_PARITY}"
        )
        if kind:
            self.refusals[kind] += 1
            await asyncio.sleep(REFUSED_BACKOFF_S)
        else:
            self.objects += 1

    async def _watch_full(self) -> None:
        rows = self._rows(await self.control.node_views())
        capacities = {row.get("capacity") for row in rows}
        if self.capacity_lost_at_s is None and capacities - {self.plan.capacity_bytes}:
            self.capacity_lost_at_s = self.clock()
            self._event(
                f"node{self.index} NOT FULL any more: capacity {sorted(map(str, capacities))}"
            )
        free = _fewest_free(rows)
        if free is None or self.free_while_full is None:
            return
        low, high = self.free_while_full
        self.free_while_full = (min(low, free), max(high, free))

    def _rows(self, views: list[dict[str, dict[str, Any]] | None]) -> list[dict[str, Any]]:
        return [view[self.address] for view in views if view is not None and self.address in view]

    async def free_bytes(self) -> int | None:
        """The fewest free bytes any gateway up reports for the node; None if none can say."""
        return _fewest_free(self._rows(await self.control.node_views()))

    def _event(self, text: str) -> None:
        line = f"t={self.clock():7.1f}s  {text}"
        self.events.append(line)
        self.say(f"fault: {line}")


def _fewest_free(rows: list[dict[str, Any]]) -> int | None:
    known = [free for row in rows if isinstance(free := row.get("free"), int)]
    return min(known) if known else None
