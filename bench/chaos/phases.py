"""The chaos run's steps against one running cluster: seed, quiet baseline, faults, restart,
repair (or a fixed stretch without it), drain and audit.

Every wait checks, once a second, that the gateway process is alive and that no load worker
died of a bug, so a broken run stops with the reason instead of measuring nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from bench.chaos.control import Control
from bench.chaos.faults import FaultInjector, FaultPlan
from bench.chaos.filler import FillPlan, NodeFiller
from bench.chaos.repair import RepairMonitor, check_repair_endpoint, wait_live_nodes
from bench.chaos.report import ChaosRun, FaultSummary, FillSummary
from bench.chaos.service_faults import ServiceFaults, ServicePlan
from bench.common.cli import say
from bench.common.load.model import ContentPool, LoadMix, Model
from bench.common.load.runner import LoadRunner
from bench.common.load.stats import LoadStats
from diststorage.local import LocalCluster, free_port
from diststorage.testing import sigv4_middleware
from diststorage.testing.private_postgres import PrivatePostgres

NODES = 6
BUDGET_NODES = 2  # M of ec:4+2
NODES_BACK_TIMEOUT_S = 60.0
WATCH_INTERVAL_S = 1.0
T = TypeVar("T")


@dataclass(frozen=True)
class Profile:
    name: str
    mix: LoadMix
    seed_fraction: float
    baseline_s: float
    chaos_s: float
    plan: FaultPlan
    services: ServicePlan
    repair_timeout_s: float
    # (objects, bytes each) written before a node is replaced, so that its repair lasts long
    # enough (tens of seconds) for the foreground throughput beside it to mean something.
    replace_ballast: tuple[int, int] = (0, 0)
    # One node more, with a small capacity, filled up during the faults (filler.py).
    fill: FillPlan | None = None


class GatewayDied(Exception):
    """The gateway process exited during the run; nothing after that can be measured."""


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"    (cannot read {path}: {exc})"
    return "\n".join(f"    {line}" for line in text.splitlines()[-lines:])


@dataclass
class Phases:
    """The run's steps, in order, against one cluster."""

    cluster: LocalCluster
    profile: Profile
    run: ChaosRun
    control: aiohttp.ClientSession
    load: LoadRunner
    services: ServiceFaults
    filler: NodeFiller | None = None

    @property
    def stats(self) -> LoadStats:
        return self.run.stats

    async def watch(self, seconds: float) -> None:
        """Waits, checking that the gateway and the load workers are still alive."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(WATCH_INTERVAL_S, left))
            self.check_alive()

    async def supervise(self, work: Coroutine[Any, Any, T]) -> T:
        """Runs ``work`` while checking, every second, that the gateway and the load live."""
        task = asyncio.create_task(work)
        try:
            while not task.done():
                await asyncio.wait([task], timeout=WATCH_INTERVAL_S)
                self.check_alive()
            return task.result()
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def check_alive(self) -> None:
        for index in range(len(self.cluster.urls)):
            if not self.services.expected_down(index) and not self.cluster.gateway_running(index):
                tail = _log_tail(self.cluster.gateway_log_path(index))
                raise GatewayDied(f"gateway{index} exited; the end of its log:\n{tail}")
        self.load.raise_if_failed()

    async def seed_and_baseline(self) -> None:
        self.stats.begin("seed")
        say(f"seeding {self.profile.seed_fraction:.0%} of the keys of every size class")
        await self.load.seed_objects(self.profile.seed_fraction)
        self.check_alive()
        self.stats.begin("baseline")
        say(f"quiet baseline: the load mix for {self.profile.baseline_s:g} s, no faults")
        self.load.start()
        await self.watch(self.profile.baseline_s)

    async def faults(self, injector: FaultInjector) -> None:
        self.stats.begin("chaos")
        say(f"faults for {self.profile.chaos_s:g} s (at most {BUDGET_NODES} nodes at once)")
        await self.supervise(self._all_faults(injector))

    async def _all_faults(self, injector: FaultInjector) -> None:
        """The node faults and the service faults, side by side, for the same time."""
        work = [injector.run(self.profile.chaos_s), self.services.run(self.profile.chaos_s)]
        if self.filler is not None:

            def nodes_out() -> int:
                return injector.fault_state()[1]

            work.append(self.filler.run(self.load, nodes_out, self.profile.chaos_s))
        await asyncio.gather(*work)

    async def restart(self, injector: FaultInjector) -> None:
        self.run.faults_stopped_s = self.stats.now_s()
        self.stats.begin("restart")
        say("faults stop: restarting and continuing every faulted node")
        back = await injector.lift_all(NODES_BACK_TIMEOUT_S)
        live = True
        for url in self.cluster.urls:
            live = live and await wait_live_nodes(
                self.control, url, self.cluster.nodes, NODES_BACK_TIMEOUT_S
            )
        if not (back and live):
            self.run.failures.append(
                f"not every node was live {NODES_BACK_TIMEOUT_S:g} s after the faults stopped"
            )
        self.run.all_live_s = self.stats.now_s()
        say(f"all nodes back after {self.run.all_live_s - self.run.faults_stopped_s:.1f} s")

    async def repair(self, monitor: RepairMonitor) -> None:
        self.stats.begin("repair")
        assert self.run.all_live_s is not None
        timeout_s = self.profile.repair_timeout_s
        say(f"repair: load goes on until 0 stripes are below target (at most {timeout_s:g} s)")
        sample = await self.supervise(monitor.wait_until_repaired(self.run.all_live_s, timeout_s))
        if sample is None:
            last = monitor.samples[-1] if monitor.samples else None
            detail = (last.status or last.error) if last else "no sample"
            self.run.failures.append(
                f"stripes below target did not reach 0 within {timeout_s:g} s of all nodes"
                f" being back, or /_/repair kept failing; last /_/repair: {detail}"
            )
            return
        self.run.repaired_s = sample.t_s
        assert self.run.faults_stopped_s is not None
        after_s = sample.t_s - self.run.faults_stopped_s
        say(f"0 stripes below target, {after_s:.1f} s after the faults stopped")

    async def replace_a_node(self, monitor: RepairMonitor) -> None:
        """A node dies for good and an empty one joins, under the same load: repair rebuilds
        the lost shards (the new node first, as the least used). The window from repair first
        seen working to zero stripes below target measures foreground throughput under a real,
        long repair."""
        count, size = self.profile.replace_ballast
        if count:
            self.stats.begin("ballast")
            say(f"ballast: {count} objects of {size >> 20} MiB for the replacement to rebuild")
            await self.supervise(self.load.store_ballast(count, size))
        self.stats.begin("replace")
        timeout_s = self.profile.repair_timeout_s
        say("replace: node0 dies for good and an empty node joins; repair rebuilds under load")
        self.cluster.kill_node(0)
        self.cluster.add_node(free_port())
        started_s = self.stats.now_s()
        working = await self.supervise(monitor.wait_until_working(started_s, timeout_s))
        if working is None:
            self.run.failures.append(f"repair did not start within {timeout_s:g} s of node0 dying")
            return
        done = await self.supervise(monitor.wait_until_repaired(working.t_s, timeout_s))
        if done is None:
            self.run.failures.append(
                f"repair after replacing node0 did not reach 0 stripes below target in"
                f" {timeout_s:g} s"
            )
            return
        self.run.replace_window_s = (working.t_s, done.t_s)
        say(f"replacement rebuilt in {done.t_s - working.t_s:.1f} s of repair")

    async def after_faults_without_repair(self) -> None:
        self.stats.begin("after faults")
        say(f"--without-repair: the load mix for {self.profile.baseline_s:g} s after the faults")
        await self.watch(self.profile.baseline_s)

    async def drain_and_audit(self) -> None:
        self.stats.begin("drain")
        say("stopping the load (operations in hand finish)")
        await self.load.stop()
        self.stats.begin("audit")
        keys = len(self.load.model.existing_keys())
        say(f"audit: reading back all {keys} objects that may exist")
        await self.load.audit()
        self.stats.end()
        self.run.committed_objects = len(self.load.model.existing_keys())
        self.run.committed_bytes = self.load.model.committed_bytes()


async def run_phases(
    cluster: LocalCluster, profile: Profile, run: ChaosRun, postgres: PrivatePostgres | None
) -> None:
    model = Model(profile.mix)
    content = ContentPool(run.seed)
    async with aiohttp.ClientSession(middlewares=[sigv4_middleware(cluster.root)]) as session:
        if run.with_repair:
            first = await check_repair_endpoint(session, cluster.url)
            say(f"/_/repair answers: {first}")
        services = _service_faults(cluster, postgres, profile, run, session)
        control = Control(session, services.live_urls)
        filler = await _add_filler(cluster, profile, control, run) if profile.fill else None
        run.nodes = cluster.nodes
        monitor = RepairMonitor(
            session, cluster.urls, run.stats.now_s, lambda: run.stats.moved_bytes
        )
        monitor_task = asyncio.create_task(monitor.run()) if run.with_repair else None
        injector = _node_faults(cluster, control, profile, run, filler)
        services.healthy_nodes = injector.healthy_addresses
        try:
            async with LoadRunner(
                cluster.url,
                profile.mix,
                model,
                content,
                run.stats,
                run.clients,
                run.seed,
                fault_state=injector.fault_state,
                live_urls=services.live_urls,
                kills_of=services.kills_of,
            ) as load:
                phases = Phases(cluster, profile, run, session, load, services, filler)
                await phases.seed_and_baseline()
                try:
                    await phases.faults(injector)
                    await phases.restart(injector)
                finally:
                    _record_faults(run.faults, injector, services, filler)
                if run.with_repair:
                    await phases.repair(monitor)
                    await phases.replace_a_node(monitor)
                else:
                    await phases.after_faults_without_repair()
                await phases.drain_and_audit()
        finally:
            run.stats.end()
            monitor.stop()
            if monitor_task is not None:
                await monitor_task
            run.repair_samples = monitor.samples


def _service_faults(
    cluster: LocalCluster,
    postgres: PrivatePostgres | None,
    profile: Profile,
    run: ChaosRun,
    session: aiohttp.ClientSession,
) -> ServiceFaults:
    """Gateway kills and database restarts, on their own random schedule."""
    return ServiceFaults(
        cluster,
        postgres,
        profile.services,
        random.Random(run.seed + 1),
        run.stats.now_s,
        say,
        session=session,
    )


def _node_faults(
    cluster: LocalCluster,
    control: Control,
    profile: Profile,
    run: ChaosRun,
    filler: NodeFiller | None,
) -> FaultInjector:
    """Node kills and pauses, held back while the node that fills up is being filled."""
    return FaultInjector(
        cluster,
        control,
        profile.plan,
        random.Random(run.seed),
        run.stats.now_s,
        say,
        hold=filler.filling if filler is not None else lambda: False,
    )


async def _add_filler(
    cluster: LocalCluster, profile: Profile, control: Control, run: ChaosRun
) -> NodeFiller:
    """Starts the node that will fill up, and waits until every gateway has it live."""
    assert profile.fill is not None
    filler = NodeFiller(
        cluster, control, profile.fill, run.stats.now_s, say, lambda: run.stats.total_ops()["PUT"]
    )
    index = await asyncio.to_thread(filler.add_node)
    say(f"node{index} added with a capacity of {profile.fill.capacity_bytes >> 20} MiB, to fill up")
    for url in cluster.urls:
        await asyncio.to_thread(cluster.wait_live_nodes, cluster.nodes, NODES_BACK_TIMEOUT_S, url)
    return filler


def _record_faults(
    summary: FaultSummary,
    injector: FaultInjector,
    services: ServiceFaults,
    filler: NodeFiller | None,
) -> None:
    summary.kills = injector.kills
    summary.pauses = injector.pauses
    summary.max_unavailable = injector.max_unavailable
    summary.late_nodes = sorted(injector.late_nodes)
    summary.held_back = injector.held_back
    summary.events = sorted(injector.events + services.events + (filler.events if filler else []))
    summary.gateway_kills = services.gateway_kills
    summary.kills_by_gateway = dict(sorted(services.kills_by_gateway.items()))
    summary.late_gateways = services.late_gateways
    summary.database_restarts = services.database_restarts
    summary.database_away_s = services.database_away_s
    if filler is not None:
        summary.fill = FillSummary(
            node=filler.index,
            capacity_bytes=filler.plan.capacity_bytes,
            shard_bytes=filler.plan.shard_bytes,
            margin_bytes=filler.margin_bytes,
            objects=filler.objects,
            refusals=dict(filler.refusals.most_common()),
            filled_at_s=filler.filled_at_s,
            load_puts_at_fill=filler.load_puts_at_fill,
            free_while_full=filler.free_while_full,
            capacity_lost_at_s=filler.capacity_lost_at_s,
        )
