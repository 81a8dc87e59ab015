"""The durability histogram from at-risk groups and stripe totals (pure), the fewest-spare and
ETA figures, and the monitor's totals: counted again only once they are older than the
interval, in virtual time."""

from __future__ import annotations

import math
from collections.abc import Sequence

from diststorage.core.clock import utc_now
from diststorage.core.ids import new_id
from diststorage.core.policy import parse_policy
from diststorage.gateway.workers.durability import (
    SNAPSHOT_DUTY_FRACTION,
    SNAPSHOT_INTERVAL_S,
    TOTALS_DUTY_FRACTION,
    TOTALS_MIN_INTERVAL_S,
    DurabilityMonitor,
    DurabilityReport,
    PolicyDurability,
    durability_histogram,
    fewest_spare,
    repair_eta_s,
)
from diststorage.meta import (
    DEFAULT_NAMESPACE,
    MetadataStore,
    NewObject,
    PlannedChunk,
    RepairBacklog,
    SpareStripes,
    StoredChunk,
    StripeTotals,
)
from diststorage.testing import FakeClock

EC = "ec:4+2"


def by_spare(report: Sequence[PolicyDurability]) -> list[tuple[str, dict[int, int], int]]:
    return [(p.policy, p.stripes_by_spare, p.unreadable_stripes) for p in report]


def test_every_spare_from_full_to_zero_is_a_key_and_the_rest_is_full() -> None:
    totals = StripeTotals({EC: 1000, "replicate:3": 10, "ec:4+0": 3, "replicate:1": 2}, 4)
    at_risk = [
        SpareStripes(EC, -1, 1, 2),
        SpareStripes(EC, 0, 1, 1),
        SpareStripes(EC, 1, 3, 5),
        SpareStripes("replicate:3", 2, 1, 1),  # queued, yet whole (a move)
    ]
    assert by_spare(durability_histogram(totals, at_risk, EC)) == [
        (EC, {2: 992, 1: 5, 0: 1}, 2),
        ("ec:4+0", {0: 3}, 0),
        ("replicate:1", {0: 2}, 0),
        ("replicate:3", {2: 10, 1: 0, 0: 0}, 0),
    ]


def test_the_default_policy_is_listed_with_nothing_stored_and_stale_totals_floor_at_zero() -> None:
    assert by_spare(durability_histogram(StripeTotals({}, 0), [], "replicate:2")) == [
        ("replicate:2", {1: 0, 0: 0}, 0)
    ]
    # Written since the totals were counted: more at risk than the totals know of.
    fresh = [SpareStripes("ec:2+1", 0, 2, 7)]
    assert by_spare(durability_histogram(StripeTotals({"ec:2+1": 3}, 0), fresh, EC)) == [
        (EC, {2: 0, 1: 0, 0: 0}, 0),
        ("ec:2+1", {1: 0, 0: 7}, 0),
    ]


def report_of(totals: StripeTotals, at_risk: list[SpareStripes]) -> DurabilityReport:
    spare = min((g.spare for g in at_risk), default=None)
    backlog = RepairBacklog(0, 0, sum(g.stripes for g in at_risk), spare, tuple(at_risk))
    histogram = durability_histogram(totals, at_risk, EC)
    return DurabilityReport(histogram, 0, utc_now(FakeClock()), backlog, ())


def test_fewest_spare_is_of_any_stored_stripe() -> None:
    policy = parse_policy(EC)
    assert fewest_spare(report_of(StripeTotals({}, 0), []), policy) == 2
    # A replicate:2 object at its full spare is worse off than ec:4+2 stripes at theirs.
    assert fewest_spare(report_of(StripeTotals({EC: 9, "replicate:2": 1}, 0), []), policy) == 1
    lost = [SpareStripes(EC, -2, 1, 1)]
    assert fewest_spare(report_of(StripeTotals({EC: 9}, 0), lost), policy) == -2


def test_eta_is_zero_with_nothing_to_do_and_infinite_without_progress() -> None:
    assert repair_eta_s(0, 1024, 0.0) == 0.0
    assert math.isinf(repair_eta_s(10, 1024, 0.0))
    assert repair_eta_s(10, 1024, 512.0) == 20.0


async def put_one_stripe(store: MetadataStore) -> None:
    new = NewObject(new_id(), DEFAULT_NAMESPACE, new_id(), "text/plain", EC, 4096, 2, new_id())
    planned = [PlannedChunk(new_id(), f"{n:032x}", 0, n) for n in range(6)]
    await store.begin_upload(new, planned)
    chunks = [StoredChunk(c.chunk_id, c.node_id, 0, c.shard_index, 10, (1,)) for c in planned]
    await store.commit_upload(new.object_id, 100, "0" * 32, chunks, replace=False)


class TimedCounts:
    """The store's reads, the count of the totals taking ``count_s`` of virtual time."""

    def __init__(self, store: MetadataStore, clock: FakeClock, count_s: float) -> None:
        self._maintenance = store.maintenance
        self._clock = clock
        self.count_s = count_s
        self.counts = 0

    async def repair_backlog(self, unavailable_nodes: Sequence[str]) -> RepairBacklog:
        return await self._maintenance.repair_backlog(unavailable_nodes)

    async def stripe_totals(self) -> StripeTotals:
        self.counts += 1
        self._clock.now += self.count_s
        return await self._maintenance.stripe_totals()


async def test_slow_totals_are_counted_again_only_after_the_interval(
    store: MetadataStore,
) -> None:
    """A count that takes 1 s is repeated after the 60 s interval, not after 100 s."""
    clock = FakeClock()
    reads = TimedCounts(store, clock, count_s=1.0)
    monitor = DurabilityMonitor(reads, list, parse_policy(EC), 60.0, clock)
    await put_one_stripe(store)
    first = await monitor.assess()
    assert first.policies[0].stripes_by_spare == {2: 1, 1: 0, 0: 0}
    await put_one_stripe(store)
    # The totals' age runs from when their count began, at 0.
    clock.now = 59.5
    cached = await monitor.assess()
    assert cached.policies[0].stripes_by_spare == {2: 1, 1: 0, 0: 0}
    assert cached.totals_refreshed_at == first.totals_refreshed_at
    clock.now = 60.0
    counted = await monitor.assess()
    assert counted.policies[0].stripes_by_spare == {2: 2, 1: 0, 0: 0}
    assert (counted.totals_refreshed_at - first.totals_refreshed_at).total_seconds() == 60
    assert reads.counts == 2


async def test_quick_totals_are_counted_again_sooner(store: MetadataStore) -> None:
    """A count of 5 ms waits 100 times as long, but never less than the minimum."""
    clock = FakeClock()
    reads = TimedCounts(store, clock, count_s=0.005)
    monitor = DurabilityMonitor(reads, list, parse_policy(EC), 60.0, clock)
    await monitor.assess()  # counted from 0
    clock.now = TOTALS_MIN_INTERVAL_S / 2
    await monitor.assess()
    assert reads.counts == 1
    clock.now = TOTALS_MIN_INTERVAL_S
    await put_one_stripe(store)
    assert (await monitor.assess()).policies[0].stripes_by_spare == {2: 1, 1: 0, 0: 0}
    assert reads.counts == 2
    # Counted from 2 s, taking 0.125 s: not again before 2 + 100 * 0.125 = 14.5 s.
    reads.count_s = 0.125
    clock.now = 2 * TOTALS_MIN_INTERVAL_S
    await monitor.assess()
    assert reads.counts == 3
    clock.now = 2 * TOTALS_MIN_INTERVAL_S + TOTALS_DUTY_FRACTION * 0.125 - 0.5
    await monitor.assess()
    assert reads.counts == 3
    clock.now += 0.5
    await monitor.assess()
    assert reads.counts == 4


async def test_the_worker_keeps_a_snapshot(store: MetadataStore) -> None:
    clock = FakeClock()
    out = [f"{0:032x}"]
    monitor = DurabilityMonitor(store.maintenance, lambda: list(out), parse_policy(EC), 60.0, clock)
    assert monitor.latest is None and monitor.latest_at_s == 0
    await put_one_stripe(store)
    step = await monitor.work()
    assert step.wait_s > 0 and monitor.latest is not None
    assert monitor.latest.unavailable_nodes == tuple(out)
    # The node out holds shard 0.
    assert monitor.latest.policies[0].stripes_by_spare == {2: 0, 1: 1, 0: 0}
    assert monitor.latest_at_s == clock.time()


async def test_a_slow_snapshot_is_followed_by_a_longer_pause(store: MetadataStore) -> None:
    clock = FakeClock()

    def slow_unavailable() -> list[str]:
        clock.now += 2.0  # the snapshot takes 2 s of (virtual) time
        return []

    monitor = DurabilityMonitor(store.maintenance, slow_unavailable, parse_policy(EC), 60.0, clock)
    step = await monitor.work()
    assert step.wait_s == SNAPSHOT_DUTY_FRACTION * 2.0
    fast = DurabilityMonitor(store.maintenance, list, parse_policy(EC), 60.0, FakeClock())
    assert (await fast.work()).wait_s == SNAPSHOT_INTERVAL_S
