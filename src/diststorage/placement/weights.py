"""How much a node's self-reported free space may weigh in placement. Pure: no I/O.

Placement weights each node by the free space its heartbeat reports (rendezvous.py), and that
figure is the node's word. A node reporting a petabyte free beside nodes reporting a few
terabytes would be ranked first for nearly every new chunk set, and receive a shard of each.
So the weight is capped, per placement, over the nodes that could take the chunk::

    weight = min(free_bytes, FREE_SPACE_CAP_FACTOR x lower median of their free_bytes)

Why this rule:

- The median of what the candidates report moves only if half of them lie, so one node (or
  a few) cannot raise its own cap by lying. The lower median, so that with two candidates
  the smaller report sets it, and a liar's own figure never does while honest nodes are at
  least half.
- A factor, not equality, because honest clusters are unequal. A new empty node beside nodes
  three quarters full reports four times their free space and keeps its whole weight; beside
  fuller ones it is capped at four times theirs, so it still takes new shards about four
  times as often as each of them, while repair and rebalancing fill it first anyway (they
  place by emptiest, gateway/objects/chunkset.py place_emptiest). Disks of mixed sizes up to
  4:1 are weighted by free space exactly. A larger factor leaves a liar more; a smaller one
  bends honest mixed clusters.
- Capping instead by what the metadata has seen a node hold, plus a growth allowance, was set
  aside: a new empty node has been seen to hold nothing, so it would take almost no new
  writes until other means had filled it, which is the honest case this must keep working.

What the cap bounds: a liar weighs at most FREE_SPACE_CAP_FACTOR typical nodes. A chunk
set's shards go to distinct nodes, so it gets at most one shard of each set whatever its
weight, and it is picked for a set only as often as an honest node reporting the cap would
be. Who may heartbeat at all is another matter: mutual TLS and operator admission.
"""

from __future__ import annotations

from collections.abc import Sequence

FREE_SPACE_CAP_FACTOR = 4


def free_space_cap(free_bytes: Sequence[int]) -> int:
    """The most free space any of these candidates may weigh: FREE_SPACE_CAP_FACTOR times
    their lower median. ValueError for no candidates."""
    if not free_bytes:
        raise ValueError("no candidates to cap")
    ordered = sorted(free_bytes)
    return FREE_SPACE_CAP_FACTOR * ordered[(len(ordered) - 1) // 2]


def capped_weights(free_bytes: Sequence[int]) -> list[int]:
    """Each candidate's placement weight: its free space, capped (see the module)."""
    if not free_bytes:
        return []
    cap = free_space_cap(free_bytes)
    return [min(free, cap) for free in free_bytes]
