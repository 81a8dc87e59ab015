"""The cap on a node's self-reported free space as placement weighs it: the rule itself, a liar
ranked exactly as an honest node reporting the cap, honest unequal clusters weighted as before
within the factor; through the real write pipeline (real SQLite metadata, fake nodes), a node
heartbeating a petabyte free getting no more than its capped share of new shards; and the
node table's fill share (repair's order) vouching no more for it than the cap."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from diststorage.core.policy import parse_policy
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.inventory import WRITTEN_MEMORY_S, Inventory
from diststorage.gateway.objects import PutOperation
from diststorage.meta import DEFAULT_NAMESPACE, MetadataStore, NodeReport
from diststorage.placement import Candidate, rank_nodes
from diststorage.placement.weights import FREE_SPACE_CAP_FACTOR, capped_weights, free_space_cap
from diststorage.testing import BytesBody, FakeClock, in_memory_pipeline

GIB = 1 << 30
PETABYTE = 10**15
KEYS = 3000


def nodes(free: list[int]) -> list[Candidate]:
    return [Candidate(f"node{i}", f) for i, f in enumerate(free)]


def test_the_cap_is_a_factor_of_the_lower_median() -> None:
    assert FREE_SPACE_CAP_FACTOR == 4
    assert free_space_cap([1, 2, 3, 4]) == 8  # lower median 2
    assert free_space_cap([7]) == 28
    assert free_space_cap([10, PETABYTE]) == 40  # two candidates: the smaller report sets it
    assert capped_weights([10, 10, 10, PETABYTE]) == [10, 10, 10, 40]
    assert capped_weights([]) == []
    with pytest.raises(ValueError):
        free_space_cap([])


def test_a_liar_ranks_exactly_as_a_node_reporting_the_cap() -> None:
    honest = [2 * GIB] * 8
    lying = nodes([*honest, PETABYTE])
    capped = nodes([*honest, FREE_SPACE_CAP_FACTOR * 2 * GIB])
    for key in range(500):
        assert rank_nodes(lying, f"k{key}") == rank_nodes(capped, f"k{key}")


def test_a_liar_is_first_no_more_often_than_its_capped_weight_allows() -> None:
    candidates = nodes([*[2 * GIB] * 12, PETABYTE])
    firsts = Counter(rank_nodes(candidates, f"k{k}")[0] for k in range(KEYS))
    # Weight 4 against twelve of weight 1: first in 4/16 of placements, not in nearly all.
    assert 0.20 < firsts["node12"] / KEYS < 0.30


def test_honest_unequal_nodes_are_weighted_by_free_space_within_the_factor() -> None:
    # A new, empty node beside nodes 70 % full: 1000 against 300, under the cap of 1200.
    candidates = nodes([300] * 5 + [1000])
    firsts = Counter(rank_nodes(candidates, f"k{k}")[0] for k in range(KEYS))
    assert 2.8 < firsts["node5"] / firsts["node0"] < 3.9
    # Beside nodes 90 % full it is capped at four times theirs, and still filled fastest.
    candidates = nodes([100] * 5 + [1000])
    firsts = Counter(rank_nodes(candidates, f"k{k}")[0] for k in range(KEYS))
    assert 3.3 < firsts["node5"] / firsts["node0"] < 4.8


async def test_a_node_heartbeating_a_petabyte_gets_only_its_capped_share_of_new_shards(
    tmp_path: Path, sqlite_store: MetadataStore
) -> None:
    settings = GatewaySettings(
        data_dir=tmp_path / "gateway",
        stripe_size_bytes=4096,
        small_object_bytes=0,
        inline_object_bytes=0,
        redundancy="ec:2+1",
    )
    pipeline = await in_memory_pipeline(settings, sqlite_store, 9, FakeClock())
    liar = pipeline.nodes.node(8)
    await pipeline.inventory.heartbeat(
        NodeReport(liar.node_id, "fake-liar:1", PETABYTE, 0, PETABYTE, 0)
    )
    objects = 150
    for number in range(objects):
        operation = PutOperation(
            DEFAULT_NAMESPACE,
            f"k{number}",
            "application/x-test",
            parse_policy("ec:2+1"),
            4096,
            True,
        )
        await pipeline.writer.write(operation, BytesBody(bytes(4096)))
    with_liar = len(liar.chunks)
    # Uncapped it would hold a shard of every object. Weighing four honest nodes, beside
    # eight honest ones, it is in about 74 % of 3-node sets (rank_nodes over many keys), each
    # honest node in about 28 %: more than they, far from all.
    assert 0.6 * objects <= with_liar <= 0.85 * objects
    honest = [len(pipeline.nodes.node(i).chunks) for i in range(8)]
    assert sum(honest) + with_liar == 3 * objects
    assert max(honest) < with_liar


async def test_repair_fills_a_liar_only_as_far_as_the_cap_vouches(
    sqlite_store: MetadataStore,
) -> None:
    clock = FakeClock()
    inventory = Inventory(sqlite_store, 10.0, clock=clock)

    async def beat_all() -> None:
        for number in range(4):  # half full: 1 GiB held, 1 GiB free
            await inventory.heartbeat(
                NodeReport(f"{number:032x}", f"10.0.0.{number}:7101", 2 * GIB, GIB, GIB, 1)
            )
        await inventory.heartbeat(NodeReport(liar, "10.0.0.9:7101", PETABYTE, 0, PETABYTE, 0))

    liar = "f" * 32
    await beat_all()
    assert inventory.used_share(f"{0:032x}") == 0.5
    assert inventory.used_share(liar) == 0.0  # an empty node: filled first, like any
    # What was written there counts, and its room is no more than the cap (4 GiB): after
    # 5 GiB it is fuller than the honest nodes, whatever it goes on reporting.
    inventory.note_used(liar, 5 * GIB)
    await beat_all()
    assert inventory.used_share(liar) == pytest.approx(5 / 9)
    assert inventory.used_share(liar) > inventory.used_share(f"{0:032x}")
    # The floor fades (bytes deleted since must not count for ever): much later, what a node
    # reports is all there is to go on again.
    clock.now += 10 * WRITTEN_MEMORY_S
    await beat_all()
    assert inventory.used_share(liar) < 0.01
