from collections import Counter

from diststorage.placement import Candidate, rank_nodes


def _nodes(free: list[int]) -> list[Candidate]:
    return [Candidate(f"node{i}", f) for i, f in enumerate(free)]


def test_distinct_and_deterministic() -> None:
    nodes = _nodes([100] * 8)
    ranked = rank_nodes(nodes, "obj/0")
    assert len(ranked) == len(set(ranked)) == 8
    assert ranked == rank_nodes(list(reversed(nodes)), "obj/0")


def test_balances_over_many_keys() -> None:
    counts = Counter(n for k in range(6000) for n in rank_nodes(_nodes([100] * 8), f"k{k}")[:6])
    assert max(counts.values()) / min(counts.values()) < 1.1


def test_weighted_by_free_space() -> None:
    nodes = _nodes([100, 100, 100, 300])
    firsts = Counter(rank_nodes(nodes, f"k{k}")[0] for k in range(6000))
    assert 2.4 < firsts["node3"] / firsts["node0"] < 3.6


def test_full_nodes_excluded() -> None:
    ranked = rank_nodes(_nodes([0, 50, 100]), "x", min_free_bytes=60)
    assert ranked == ["node2"]


def test_adding_a_node_moves_few_placements() -> None:
    before = {k: rank_nodes(_nodes([100] * 6), f"k{k}")[0] for k in range(3000)}
    after = {k: rank_nodes(_nodes([100] * 7), f"k{k}")[0] for k in range(3000)}
    moved = sum(1 for k in before if before[k] != after[k])
    assert all(after[k] == "node6" for k in before if before[k] != after[k])
    assert moved < 3000 * 0.25
