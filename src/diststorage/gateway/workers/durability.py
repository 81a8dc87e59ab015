"""The durability histogram: for each policy in use, how many stripes can lose 0, 1, 2 … more
nodes and stay readable, the stripes already unreadable, and the inline objects.

``DurabilityMonitor.assess`` answers from one at-risk query (the repair backlog's, see
meta.durability) and the stripes stored per policy, which it counts again once they are
``totals_interval_s`` old, or sooner while counting them is cheap (``_fresh_totals``): every
stripe not at risk is at its policy's full spare. Its worker keeps ``latest`` at most
``SNAPSHOT_INTERVAL_S`` old (longer only while the at-risk segments take long to read), so
metrics scrapes read a snapshot and never queue database queries of their own. Every gateway
runs it: the figures come from the database and are the same on each.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from diststorage.core.clock import SYSTEM_CLOCK, Clock, utc_now
from diststorage.core.policy import RedundancyPolicy, parse_policy
from diststorage.core.settings import GatewaySettings
from diststorage.core.worker import Figures, Step, WorkerState
from diststorage.gateway.workers.repair_plan import NodeHealth
from diststorage.meta import RepairBacklog, SpareStripes, StripeTotals

SNAPSHOT_INTERVAL_S = 3.0
# The stripes per policy are counted again after at least this many times the last count took,
# and never sooner than the minimum (nor later than the monitor's interval).
TOTALS_DUTY_FRACTION = 100.0
TOTALS_MIN_INTERVAL_S = 1.0
# A snapshot that took t seconds is followed by a pause of at least this many times t.
SNAPSHOT_DUTY_FRACTION = 10.0


def full_spare(policy: RedundancyPolicy) -> int:
    """The node losses a stripe with all its shards on distinct nodes survives: M of ec:K+M,
    N-1 of replicate:N."""
    return policy.total_shards - policy.needed_to_read


@dataclass(frozen=True, slots=True)
class PolicyDurability:
    policy: str
    shards: int
    needed: int
    # Spare → stripes, from the policy's full spare down to 0, every key present.
    stripes_by_spare: dict[int, int]
    unreadable_stripes: int

    def as_json(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "shards": self.shards,
            "needed": self.needed,
            "stripes_by_spare": {str(s): n for s, n in self.stripes_by_spare.items()},
            "unreadable_stripes": self.unreadable_stripes,
        }


@dataclass(frozen=True, slots=True)
class DurabilityReport:
    policies: tuple[PolicyDurability, ...]
    inline_objects: int
    totals_refreshed_at: datetime
    backlog: RepairBacklog
    unavailable_nodes: tuple[str, ...]

    def histogram_json(self) -> dict[str, Any]:
        """The ``durability`` member of ``GET /_/repair``."""
        return {
            "policies": [p.as_json() for p in self.policies],
            "inline_objects": self.inline_objects,
            "totals_refreshed_at": self.totals_refreshed_at.isoformat(),
        }


def durability_histogram(
    totals: StripeTotals, at_risk: Iterable[SpareStripes], default_policy: str
) -> tuple[PolicyDurability, ...]:
    """Per policy (the default first, then by name): the at-risk stripes at their spare, and
    the rest of the policy's stripes at its full spare. ``totals`` may be older than
    ``at_risk``; a full bar never goes below 0 for it."""
    risky: dict[str, list[SpareStripes]] = {}
    for group in at_risk:
        risky.setdefault(group.policy, []).append(group)
    names = {default_policy, *totals.stripes_by_policy, *risky}
    ordered = sorted(names, key=lambda name: (name != default_policy, name))
    return tuple(
        _one_policy(name, totals.stripes_by_policy.get(name, 0), risky.get(name, ()))
        for name in ordered
    )


def _one_policy(name: str, total: int, at_risk: Sequence[SpareStripes]) -> PolicyDurability:
    policy = parse_policy(name)
    full = full_spare(policy)
    by_spare = dict.fromkeys(range(full, -1, -1), 0)
    unreadable = 0
    for group in at_risk:
        if group.spare < 0:
            unreadable += group.stripes
        else:
            by_spare[min(group.spare, full)] += group.stripes
    by_spare[full] += max(total - sum(g.stripes for g in at_risk), 0)
    return PolicyDurability(
        policy.spec, policy.total_shards, policy.needed_to_read, by_spare, unreadable
    )


def fewest_spare(report: DurabilityReport, default_policy: RedundancyPolicy) -> int:
    """The fewest further node losses any stored stripe survives (negative: some stripe is
    already short of that many shards); with nothing stored, the default policy's full spare."""
    spares = [
        spare
        for policy in report.policies
        for spare, stripes in policy.stripes_by_spare.items()
        if stripes
    ]
    if report.backlog.fewest_spare_shards is not None:
        spares.append(report.backlog.fewest_spare_shards)
    return min(spares, default=full_spare(default_policy))


def repair_block_bytes(settings: GatewaySettings) -> int:
    """What rebuilding one stripe writes, about: one block of the default policy."""
    return settings.stripe_size_bytes // max(settings.default_policy.data_shards, 1)


def repair_eta_s(stripes_below_target: int, block_bytes: int, rate_bytes_per_s: float) -> float:
    """Seconds until the stripes below target are rebuilt at the measured rate, one block
    each: 0 with none below target, infinite while repair makes no progress here."""
    if stripes_below_target == 0:
        return 0.0
    if rate_bytes_per_s <= 0:
        return float("inf")
    return stripes_below_target * block_bytes / rate_bytes_per_s


def unavailable_nodes(node_ids: Iterable[str], health: Callable[[str], NodeHealth]) -> list[str]:
    """The nodes whose chunks count as lost for now: every one not healthy (down, suspect,
    draining), as repair judges them."""
    return sorted(n for n in node_ids if health(n) != NodeHealth.HEALTHY)


class DurabilityReads(Protocol):
    """What the monitor reads (``MaintenanceStore``); both raise what the store raises."""

    async def repair_backlog(self, unavailable_nodes: Sequence[str]) -> RepairBacklog: ...

    async def stripe_totals(self) -> StripeTotals: ...


class DurabilityMonitor:
    name = "durability"

    def __init__(
        self,
        maintenance: DurabilityReads,
        unavailable: Callable[[], list[str]],
        default_policy: RedundancyPolicy,
        totals_interval_s: float,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self._maintenance = maintenance
        self._unavailable = unavailable
        self._default_policy = default_policy.spec
        self._totals_interval_s = totals_interval_s
        self._clock = clock
        self._totals: StripeTotals | None = None
        self._totals_counted_at = float("-inf")
        self._totals_due_after_s = 0.0
        self._totals_refreshed_at = utc_now(clock)
        # One count of the totals at a time, however many callers find them stale at once.
        self._totals_lock = asyncio.Lock()
        self.latest: DurabilityReport | None = None
        # The wall time ``latest`` was taken at (seconds since the epoch); 0 before the first.
        self.latest_at_s = 0.0

    @property
    def totals_refreshed_at(self) -> datetime:
        """When the stripes per policy were last counted (start-up before the first count)."""
        return self._totals_refreshed_at

    async def assess(self) -> DurabilityReport:
        """The histogram and the repair backlog now, with the totals at most
        ``totals_interval_s`` old. Raises what the metadata store raises; cancelled, it
        leaves the totals as they were."""
        unavailable = self._unavailable()
        backlog = await self._maintenance.repair_backlog(unavailable)
        totals = await self._fresh_totals()
        return DurabilityReport(
            durability_histogram(totals, backlog.at_risk, self._default_policy),
            totals.inline_objects,
            self._totals_refreshed_at,
            backlog,
            tuple(unavailable),
        )

    async def _fresh_totals(self) -> StripeTotals:
        """The totals, counted again once older than the interval, or sooner while counting
        is cheap: a count that took t seconds is not repeated for ``TOTALS_DUTY_FRACTION``
        times t (at least ``TOTALS_MIN_INTERVAL_S``), so a small cluster shows new objects
        within a second and a large one spends about 1 % of its database's time on it."""
        async with self._totals_lock:
            age_s = self._clock.monotonic() - self._totals_counted_at
            if self._totals is None or age_s >= self._totals_due_after_s:
                counted_at = self._clock.monotonic()
                self._totals = await self._maintenance.stripe_totals()
                took_s = self._clock.monotonic() - counted_at
                self._totals_counted_at = counted_at
                self._totals_refreshed_at = utc_now(self._clock)
                self._totals_due_after_s = min(
                    self._totals_interval_s,
                    max(TOTALS_MIN_INTERVAL_S, TOTALS_DUTY_FRACTION * took_s),
                )
            return self._totals

    # -- the snapshot worker ---------------------------------------------------------------

    def status(self) -> Figures:
        report = self.latest
        if report is None:
            return {}
        return {
            "stripes_below_target": report.backlog.stripes_below_target,
            "unreadable_stripes": sum(p.unreadable_stripes for p in report.policies),
        }

    async def work(self) -> Step:
        """One snapshot; a failure keeps the last one (its age tells) and the supervisor
        backs off. The pause grows with the snapshot's cost: a lost node puts every segment
        it held at risk, and reading those takes the database longer, so the snapshots take
        about 1/``SNAPSHOT_DUTY_FRACTION`` of its time at most."""
        started = self._clock.monotonic()
        self.latest = await self.assess()
        self.latest_at_s = self._clock.time()
        took_s = self._clock.monotonic() - started
        return Step(WorkerState.IDLE, max(SNAPSHOT_INTERVAL_S, SNAPSHOT_DUTY_FRACTION * took_s))

    async def close(self) -> None:
        """Nothing held between snapshots."""
