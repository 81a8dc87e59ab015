from collections import Counter

from diststorage.placement import Candidate, rank_nodes, share_out


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


def test_shared_out_each_node_once_before_any_twice() -> None:
    ranked = ["a", "b", "c", "d"]
    free = dict.fromkeys(ranked, 10)
    assert share_out(ranked, free, 6, 3) == ["a", "b", "c", "d", "a", "b"]
    assert share_out(ranked, free, 3, 3) == ["a", "b", "c"]


def test_shared_out_only_onto_room_for_one_more_chunk() -> None:
    ranked = ["a", "b", "c"]
    free = {"a": 5, "b": 9, "c": 6}
    # a holds one 3-byte chunk and has no room for a second; b has room for three.
    assert share_out(ranked, free, 6, 3) == ["a", "b", "c", "b", "c", "b"]
    assert share_out(ranked, {"a": 3, "b": 3, "c": 3}, 6, 3) == ["a", "b", "c"]
