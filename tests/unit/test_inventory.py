"""The node table on a real SQLite metadata store, on an injected clock: heartbeats in; up,
suspect and down out; draining and forgotten nodes; what survives a gateway restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from diststorage.core.clock import utc_now
from diststorage.core.errors import Unavailable
from diststorage.gateway.inventory import PERSIST_INTERVAL_S, Inventory
from diststorage.meta import MetadataStore, NodeLifecycle, NodeLiveness, NodeReport
from diststorage.placement import Candidate
from diststorage.testing import FakeClock

SUSPECT_S = 3.0
TIMEOUT_S = 10.0
GIB = 1 << 30
# A moment inside each interval, clear of its edges.
EPSILON_S = 0.5


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MetadataStore]:
    opened = await MetadataStore.open(f"sqlite:///{tmp_path / 'm.db'}", 5.0)
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=1000.0)


@pytest.fixture
def inventory(store: MetadataStore, clock: FakeClock) -> Inventory:
    return Inventory(store, TIMEOUT_S, SUSPECT_S, clock)


def status(node: int, free_bytes: int = 5 * GIB, used_bytes: int = GIB) -> NodeReport:
    return NodeReport(
        node_id=node_id(node),
        address=f"127.0.0.1:{7000 + node}",
        capacity_bytes=free_bytes + used_bytes,
        used_bytes=used_bytes,
        free_bytes=free_bytes,
        chunk_count=node,
    )


def node_id(node: int) -> str:
    return f"{node:032x}"


async def test_a_node_is_up_then_suspect_then_down(inventory: Inventory, clock: FakeClock) -> None:
    await inventory.heartbeat(status(1))
    node = node_id(1)
    heard = clock.now
    assert inventory.knows(node)
    assert (inventory.state(node), inventory.is_up(node), inventory.is_live(node)) == (
        NodeLiveness.UP,
        True,
        True,
    )
    clock.now = heard + SUSPECT_S  # silent exactly as long as allowed: still up
    assert inventory.state(node) == NodeLiveness.UP
    clock.now = heard + SUSPECT_S + EPSILON_S
    assert inventory.state(node) == NodeLiveness.SUSPECT
    assert inventory.is_live(node)  # still read from
    assert not inventory.is_up(node)
    assert not inventory.is_writable(node)  # but given no new chunks
    assert inventory.down_for_s(node) is None
    clock.now = heard + TIMEOUT_S
    assert inventory.state(node) == NodeLiveness.SUSPECT
    clock.now = heard + TIMEOUT_S + EPSILON_S
    assert inventory.state(node) == NodeLiveness.DOWN
    assert not inventory.is_live(node)
    assert inventory.live_count() == 0
    assert inventory.down_for_s(node) == pytest.approx(EPSILON_S)
    clock.now += 60.0
    assert inventory.down_for_s(node) == pytest.approx(EPSILON_S + 60.0)


async def test_a_heartbeat_brings_a_down_node_back(inventory: Inventory, clock: FakeClock) -> None:
    await inventory.heartbeat(status(1))
    clock.now += TIMEOUT_S * 5
    assert inventory.state(node_id(1)) == NodeLiveness.DOWN
    await inventory.heartbeat(status(1))
    assert inventory.state(node_id(1)) == NodeLiveness.UP
    assert inventory.down_for_s(node_id(1)) is None
    assert inventory.is_writable(node_id(1))


async def test_without_a_suspect_period_a_node_goes_straight_down(
    store: MetadataStore, clock: FakeClock
) -> None:
    inventory = Inventory(store, TIMEOUT_S, clock=clock)
    await inventory.heartbeat(status(1))
    heard = clock.now
    clock.now = heard + TIMEOUT_S
    assert inventory.state(node_id(1)) == NodeLiveness.UP
    clock.now = heard + TIMEOUT_S + EPSILON_S
    assert inventory.state(node_id(1)) == NodeLiveness.DOWN


async def test_an_unknown_node_is_down(inventory: Inventory) -> None:
    assert not inventory.knows(node_id(9))
    assert inventory.state(node_id(9)) == NodeLiveness.DOWN
    assert not inventory.is_writable(node_id(9))
    assert inventory.lifecycle(node_id(9)) == NodeLifecycle.ACTIVE
    assert inventory.address_of(node_id(9)) is None


async def test_writable_candidates_are_the_up_and_active_nodes(
    inventory: Inventory, clock: FakeClock
) -> None:
    await inventory.heartbeat(status(1, free_bytes=GIB))
    clock.now += SUSPECT_S + EPSILON_S
    await inventory.heartbeat(status(2, free_bytes=2 * GIB))
    await inventory.heartbeat(status(3, free_bytes=3 * GIB))
    inventory.set_lifecycle(node_id(3), NodeLifecycle.DRAINING)
    # 1 is suspect, 3 is draining.
    assert inventory.writable_candidates() == [Candidate(node_id(2), 2 * GIB)]
    assert inventory.writable_count() == 1
    assert inventory.live_count() == 3


async def test_a_draining_node_is_up_but_takes_no_chunks_and_is_no_member(
    inventory: Inventory, store: MetadataStore
) -> None:
    for node in (1, 2, 3):
        await inventory.heartbeat(status(node))
    assert inventory.member_count() == 3
    draining = node_id(2)
    assert await store.maintenance.set_node_lifecycle(draining, NodeLifecycle.DRAINING)
    inventory.set_lifecycle(draining, NodeLifecycle.DRAINING)
    assert inventory.is_up(draining)
    assert not inventory.is_writable(draining)
    assert inventory.lifecycle(draining) == NodeLifecycle.DRAINING
    assert inventory.member_count() == 2
    assert draining not in {c.node_id for c in inventory.writable_candidates()}
    # Heartbeats do not undo an operator's choice.
    await inventory.heartbeat(status(2))
    assert inventory.lifecycle(draining) == NodeLifecycle.DRAINING
    assert not inventory.is_writable(draining)


async def test_member_count_includes_down_nodes(inventory: Inventory, clock: FakeClock) -> None:
    await inventory.heartbeat(status(1))
    await inventory.heartbeat(status(2))
    clock.now += TIMEOUT_S + EPSILON_S
    assert inventory.live_count() == 0
    assert inventory.member_count() == 2


async def test_forget_removes_a_node_entirely(inventory: Inventory) -> None:
    await inventory.heartbeat(status(1))
    await inventory.heartbeat(status(2))
    inventory.forget(node_id(1))
    assert not inventory.knows(node_id(1))
    assert inventory.node_ids() == [node_id(2)]
    assert inventory.state(node_id(1)) == NodeLiveness.DOWN
    assert inventory.member_count() == 1
    assert [c.node_id for c in inventory.writable_candidates()] == [node_id(2)]
    inventory.forget(node_id(7))  # forgetting a stranger is harmless
    assert inventory.node_ids() == [node_id(2)]


async def test_a_restarted_gateway_knows_its_nodes_as_down_until_they_heartbeat(
    inventory: Inventory, store: MetadataStore, clock: FakeClock
) -> None:
    await inventory.heartbeat(status(1))
    await inventory.heartbeat(status(2))
    await store.maintenance.set_node_lifecycle(node_id(2), NodeLifecycle.DRAINING)
    clock.now += 3600.0
    restarted = Inventory(store, TIMEOUT_S, SUSPECT_S, clock)
    await restarted.load()
    started = clock.now
    assert set(restarted.node_ids()) == {node_id(1), node_id(2)}
    assert restarted.state(node_id(1)) == NodeLiveness.DOWN
    assert restarted.address_of(node_id(1)) == status(1).address
    assert restarted.lifecycle(node_id(2)) == NodeLifecycle.DRAINING
    assert restarted.member_count() == 1
    # Down time counts from the restart, after one timeout's chance to heartbeat: the time
    # the old gateway spent down says nothing of the node.
    clock.now = started + TIMEOUT_S + 42.0
    assert restarted.down_for_s(node_id(1)) == pytest.approx(42.0)
    await restarted.heartbeat(status(1))
    assert restarted.state(node_id(1)) == NodeLiveness.UP


async def test_heartbeats_are_persisted_at_least_every_interval(
    inventory: Inventory, store: MetadataStore, clock: FakeClock
) -> None:
    async def stored_used_bytes() -> int:
        (info,) = await store.list_nodes()
        return info.used_bytes

    await inventory.heartbeat(status(1, used_bytes=GIB))
    assert await stored_used_bytes() == GIB
    clock.now += PERSIST_INTERVAL_S / 2
    await inventory.heartbeat(status(1, used_bytes=2 * GIB))
    assert await stored_used_bytes() == GIB  # in memory only
    assert inventory.views()[0].info.used_bytes == 2 * GIB
    clock.now += PERSIST_INTERVAL_S
    await inventory.heartbeat(status(1, used_bytes=3 * GIB))
    assert await stored_used_bytes() == 3 * GIB


async def test_a_beat_whose_row_was_not_written_is_written_at_the_next(
    inventory: Inventory, store: MetadataStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_node = store.record_node

    async def unavailable(*args: object, **kwargs: object) -> NodeLifecycle:
        raise Unavailable("the database is restarting")

    monkeypatch.setattr(store, "record_node", unavailable)
    with pytest.raises(Unavailable):
        await inventory.heartbeat(status(1))
    monkeypatch.setattr(store, "record_node", record_node)
    await inventory.heartbeat(status(1))
    assert [n.node_id for n in await store.list_nodes()] == [node_id(1)]


async def test_a_node_that_moved_is_persisted_at_once(
    inventory: Inventory, store: MetadataStore
) -> None:
    await inventory.heartbeat(status(1))
    moved = replace(status(1), address="127.0.0.1:9999")
    await inventory.heartbeat(moved)
    assert inventory.address_of(node_id(1)) == moved.address
    assert [n.address for n in await store.list_nodes()] == [moved.address]


async def test_note_used_charges_placement_until_the_next_heartbeat(
    inventory: Inventory,
) -> None:
    await inventory.heartbeat(status(1, free_bytes=GIB))
    inventory.note_used(node_id(1), GIB // 4)
    assert inventory.writable_candidates() == [Candidate(node_id(1), GIB - GIB // 4)]
    inventory.note_used(node_id(1), 2 * GIB)  # never below zero
    assert inventory.writable_candidates() == [Candidate(node_id(1), 0)]
    await inventory.heartbeat(status(1, free_bytes=GIB))
    assert inventory.writable_candidates() == [Candidate(node_id(1), GIB)]


async def test_used_bytes_stay_as_the_node_reported_them(inventory: Inventory) -> None:
    # The heartbeat may already count a chunk the writer charges afterwards: adding the
    # charge to the used bytes would show a node holding more than it does.
    await inventory.heartbeat(status(1, free_bytes=GIB // 2, used_bytes=GIB // 2))
    inventory.note_used(node_id(1), GIB // 4)
    [view] = inventory.views()
    assert view.info.used_bytes == GIB // 2
    assert view.info.used_bytes <= view.info.capacity_bytes


async def test_views_are_ordered_by_address_with_their_state(
    inventory: Inventory, clock: FakeClock
) -> None:
    await inventory.heartbeat(status(3))
    await inventory.heartbeat(status(1))
    clock.now += SUSPECT_S + EPSILON_S
    await inventory.heartbeat(status(2))
    views = inventory.views()
    assert [v.info.node_id for v in views] == [node_id(1), node_id(2), node_id(3)]
    assert [v.state for v in views] == [NodeLiveness.SUSPECT, NodeLiveness.UP, NodeLiveness.SUSPECT]
    assert all(v.live for v in views)
    assert [v.lifecycle for v in views] == [NodeLifecycle.ACTIVE] * 3


async def test_heartbeats_are_stamped_with_the_clocks_wall_time(
    inventory: Inventory, store: MetadataStore, clock: FakeClock
) -> None:
    await inventory.heartbeat(status(1))
    first = utc_now(clock)
    clock.now += PERSIST_INTERVAL_S * 2
    await inventory.heartbeat(status(1))
    [view] = inventory.views()
    assert (view.info.first_seen, view.info.last_heartbeat) == (first, utc_now(clock))
    [row] = await store.list_nodes()
    assert (row.first_seen, row.last_heartbeat) == (first, utc_now(clock))
