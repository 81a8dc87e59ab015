"""The workers' lease on both metadata backends: one holder at a time, renewals, lapses and
hand-overs. The lease's own clock is a fake; the database judges expiry on wall time, so the
lapse tests use a short TTL and wait it out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from diststorage.core.worker import Figures, run_worker
from diststorage.gateway.workers.lease import WORKERS_LEASE, LeaderLease
from diststorage.gateway.workers.progress import read_figures
from diststorage.meta import MetadataStore
from diststorage.testing import FakeClock

SHORT_TTL_S = 0.4


async def test_one_holder_at_a_time(store: MetadataStore) -> None:
    maintenance = store.maintenance
    first = await maintenance.acquire_lease(WORKERS_LEASE, "a", 60.0)
    assert first is not None
    assert await maintenance.acquire_lease(WORKERS_LEASE, "b", 60.0) is None
    renewed = await maintenance.acquire_lease(WORKERS_LEASE, "a", 60.0)
    assert renewed is not None and renewed >= first
    holder = await maintenance.lease_holder(WORKERS_LEASE)
    assert holder is not None and holder[0] == "a"


async def test_a_lapsed_lease_goes_to_the_next_asker(store: MetadataStore) -> None:
    maintenance = store.maintenance
    assert await maintenance.acquire_lease(WORKERS_LEASE, "a", SHORT_TTL_S) is not None
    assert await maintenance.acquire_lease(WORKERS_LEASE, "b", SHORT_TTL_S) is None
    await asyncio.sleep(SHORT_TTL_S * 1.5)
    assert await maintenance.acquire_lease(WORKERS_LEASE, "b", 60.0) is not None
    assert await maintenance.acquire_lease(WORKERS_LEASE, "a", 60.0) is None


async def test_release_hands_over_at_once(store: MetadataStore) -> None:
    maintenance = store.maintenance
    assert await maintenance.acquire_lease(WORKERS_LEASE, "a", 60.0) is not None
    await maintenance.release_lease(WORKERS_LEASE, "b")  # not b's to release
    assert await maintenance.acquire_lease(WORKERS_LEASE, "b", 60.0) is None
    await maintenance.release_lease(WORKERS_LEASE, "a")
    assert await maintenance.acquire_lease(WORKERS_LEASE, "b", 60.0) is not None


async def test_racing_askers_get_one_lease(store: MetadataStore) -> None:
    outcomes = await asyncio.gather(
        *(store.maintenance.acquire_lease(WORKERS_LEASE, f"g{i}", 60.0) for i in range(8))
    )
    assert sum(outcome is not None for outcome in outcomes) == 1


async def test_leader_believes_only_until_its_lease_could_lapse(store: MetadataStore) -> None:
    clock = FakeClock(now=1000.0)
    lease = LeaderLease(store.maintenance, "a", 30.0, clock)
    assert not lease.is_leader
    assert await lease.renew()
    clock.now += 29.9
    assert lease.is_leader
    clock.now += 0.2  # no renewal came through in time
    assert not lease.is_leader
    assert await lease.renew()


async def test_follower_does_not_lead_while_another_holds(store: MetadataStore) -> None:
    leader = LeaderLease(store.maintenance, "a", 30.0, FakeClock())
    follower = LeaderLease(store.maintenance, "b", 30.0, FakeClock())
    assert await leader.renew()
    assert not await follower.renew()
    assert leader.is_leader and not follower.is_leader


class Enough(Exception):
    """Ends a keeper's run from inside its (virtual) sleep."""


def stop_after(clock: FakeClock, sleeps: int, seen: Callable[[], None] = lambda: None) -> None:
    def on_sleep(seconds: float) -> None:
        seen()
        if len(clock.sleeps) >= sleeps:
            raise Enough

    clock.on_sleep = on_sleep


async def test_the_keeper_renews_every_third_of_the_ttl_and_hands_back(
    store: MetadataStore,
) -> None:
    clock = FakeClock()
    lease = LeaderLease(store.maintenance, "a", 30.0, clock)
    statuses: list[Figures] = []
    stop_after(clock, 3, lambda: statuses.append(lease.status()))

    with pytest.raises(Enough):
        await run_worker(lease, clock)

    assert clock.sleeps == [10.0, 10.0, 10.0]
    assert statuses == [{"leader": 1, "holder": "a"}] * 4
    assert not lease.is_leader, "closing gives up leadership"
    assert await store.maintenance.acquire_lease(WORKERS_LEASE, "b", 60.0) is not None


async def test_a_follower_keeps_asking_and_releases_nothing(store: MetadataStore) -> None:
    assert await store.maintenance.acquire_lease(WORKERS_LEASE, "a", 60.0) is not None
    clock = FakeClock()
    follower = LeaderLease(store.maintenance, "b", 30.0, clock)
    stop_after(clock, 2)

    with pytest.raises(Enough):
        await run_worker(follower, clock)

    assert clock.sleeps == [10.0, 10.0]
    assert follower.status() == {"leader": 0, "holder": "b"}
    holder = await store.maintenance.lease_holder(WORKERS_LEASE)
    assert holder is not None and holder[0] == "a"


async def test_the_holder_publishes_its_figures_with_each_renewal(store: MetadataStore) -> None:
    """A follower's renewals write nothing; the leader's figures are replaced at each renewal,
    and a new holder's replace the old one's (or clear them)."""
    published = {"segments_repaired": 1}
    leader = LeaderLease(store.maintenance, "a", 30.0, FakeClock(), lambda: published)
    follower = LeaderLease(store.maintenance, "b", 30.0, FakeClock(), lambda: {"x": 9})
    assert await leader.renew() and not await follower.renew()
    record = await store.maintenance.lease_record(WORKERS_LEASE)
    assert record is not None and record.holder == "a"
    assert read_figures(record.figures) == {"segments_repaired": 1}
    published = {"segments_repaired": 2}
    assert await leader.renew()
    record = await store.maintenance.lease_record(WORKERS_LEASE)
    assert record is not None and read_figures(record.figures) == {"segments_repaired": 2}
    await leader.close()
    assert await store.maintenance.acquire_lease(WORKERS_LEASE, "c", 60.0) is not None
    record = await store.maintenance.lease_record(WORKERS_LEASE)
    assert record is not None and (record.holder, record.figures) == ("c", None)


def test_figures_that_are_not_a_json_object_read_as_none() -> None:
    assert read_figures(None) is None
    assert read_figures("not json") is None
    assert read_figures("[1, 2]") is None
    assert read_figures('{"a": 1}') == {"a": 1}
