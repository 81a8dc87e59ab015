"""Node admission in the node table, on a real SQLite metadata store and an injected clock:
under manual admission a new node is pending (listed, never live, writable or a member) until
accepted; the acceptance lives in the database, so another gateway on it (a second Inventory)
and a restarted one both see it; open admission admits as before, pending rows included."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from diststorage.gateway.inventory import Inventory
from diststorage.meta import MetadataStore, NodeLifecycle, NodeReport
from diststorage.testing import FakeClock

SUSPECT_S = 3.0
TIMEOUT_S = 10.0
GIB = 1 << 30


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[MetadataStore]:
    opened = await MetadataStore.open(f"sqlite:///{tmp_path / 'm.db'}", 5.0)
    yield opened
    await opened.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(now=1000.0)


def manual(store: MetadataStore, clock: FakeClock) -> Inventory:
    return Inventory(store, TIMEOUT_S, SUSPECT_S, clock, admit_new_nodes=False)


def status(node: int) -> NodeReport:
    return NodeReport(
        node_id=f"{node:032x}",
        address=f"127.0.0.1:{7000 + node}",
        capacity_bytes=6 * GIB,
        used_bytes=GIB,
        free_bytes=5 * GIB,
        chunk_count=0,
    )


async def lifecycles(store: MetadataStore) -> dict[str, NodeLifecycle]:
    return {n.node_id: n.lifecycle for n in await store.list_nodes()}


async def test_a_new_node_under_manual_admission_is_pending_and_no_member(
    store: MetadataStore, clock: FakeClock
) -> None:
    inventory = manual(store, clock)
    await inventory.heartbeat(status(1))
    node = status(1).node_id
    assert inventory.knows(node)
    assert inventory.is_pending(node)
    assert not inventory.is_live(node)
    assert not inventory.is_up(node)
    assert not inventory.is_writable(node)
    assert inventory.writable_candidates() == []
    assert (inventory.live_count(), inventory.member_count(), inventory.writable_count()) == (
        0,
        0,
        0,
    )
    [view] = inventory.views()
    assert (view.lifecycle, view.live) == (NodeLifecycle.PENDING, False)
    assert inventory.returns == 0  # the workers are not told of a node that came
    assert await lifecycles(store) == {node: NodeLifecycle.PENDING}


async def test_an_accepted_node_is_a_member_and_every_gateway_sees_it(
    store: MetadataStore, clock: FakeClock
) -> None:
    first, second = manual(store, clock), manual(store, clock)
    node = status(2).node_id
    await first.heartbeat(status(2))
    await second.heartbeat(status(2))
    assert first.is_pending(node) and second.is_pending(node)
    returned: list[str] = []
    second.on_return(returned.append)

    assert await store.maintenance.accept_node(node) == NodeLifecycle.ACTIVE
    first.accept(node)
    assert first.is_writable(node) and first.member_count() == 1
    # The other gateway learns it from the database at the node's next beat.
    assert second.is_pending(node)
    clock.now += 1.0
    await second.heartbeat(status(2))
    assert second.is_writable(node)
    assert returned == [node]  # like a node that came back: waiting repairs may go on
    assert await lifecycles(store) == {node: NodeLifecycle.ACTIVE}

    restarted = manual(store, clock)
    await restarted.load()
    await restarted.heartbeat(status(2))
    assert restarted.is_writable(node)


async def test_accepting_leaves_an_admitted_node_as_it_is(
    store: MetadataStore, clock: FakeClock
) -> None:
    inventory = Inventory(store, TIMEOUT_S, SUSPECT_S, clock)
    await inventory.heartbeat(status(3))
    node = status(3).node_id
    assert await store.maintenance.set_node_lifecycle(node, NodeLifecycle.DRAINING)
    assert await store.maintenance.accept_node(node) == NodeLifecycle.DRAINING
    assert await store.maintenance.accept_node("f" * 32) is None


async def test_nodes_known_before_manual_admission_stay_admitted(
    store: MetadataStore, clock: FakeClock
) -> None:
    await Inventory(store, TIMEOUT_S, SUSPECT_S, clock).heartbeat(status(4))
    inventory = manual(store, clock)
    await inventory.load()
    await inventory.heartbeat(status(4))
    await inventory.heartbeat(status(5))
    assert inventory.is_writable(status(4).node_id)
    assert inventory.is_pending(status(5).node_id)


async def test_open_admission_admits_a_pending_node(store: MetadataStore, clock: FakeClock) -> None:
    await manual(store, clock).heartbeat(status(6))
    node = status(6).node_id
    assert await lifecycles(store) == {node: NodeLifecycle.PENDING}
    inventory = Inventory(store, TIMEOUT_S, SUSPECT_S, clock)
    await inventory.load()
    await inventory.heartbeat(status(6))
    assert inventory.is_writable(node)
    assert await lifecycles(store) == {node: NodeLifecycle.ACTIVE}


async def test_a_pending_node_is_logged_once_not_per_beat(
    store: MetadataStore, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    inventory = manual(store, clock)
    with caplog.at_level(logging.INFO, logger="diststorage.gateway.inventory"):
        for _ in range(5):
            await inventory.heartbeat(status(7))
            clock.now += 1.0
    pending = [r for r in caplog.records if "is pending" in r.getMessage()]
    assert len(pending) == 1
    assert status(7).node_id in pending[0].getMessage()
    assert not [r for r in caplog.records if "is up" in r.getMessage()]


async def test_a_drain_made_through_another_gateway_is_taken_at_a_persisted_beat(
    store: MetadataStore, clock: FakeClock
) -> None:
    inventory = Inventory(store, TIMEOUT_S, SUSPECT_S, clock)
    await inventory.heartbeat(status(8))
    node = status(8).node_id
    assert await store.maintenance.set_node_lifecycle(node, NodeLifecycle.DRAINING)
    clock.now += 20.0  # past the persist interval, and down meanwhile: the beat is persisted
    await inventory.heartbeat(status(8))
    assert inventory.lifecycle(node) == NodeLifecycle.DRAINING
