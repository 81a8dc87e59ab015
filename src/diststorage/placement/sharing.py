"""Shards onto fewer nodes than shards: the last resort of a degraded write. Pure: no I/O.

A stripe's shards belong on distinct nodes. When a write must go ahead on fewer (nodes are
down, or too few have room), every node first takes one shard, best ranked first, so the
data shards land on distinct nodes and a healthy read still touches K nodes; only the shards
left over go round again, onto nodes that have room for one chunk more than they already
hold. Repair moves the extra shards once distinct nodes are back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def share_out(
    ranked: Sequence[str], free_bytes: Mapping[str, int], shard_count: int, chunk_bytes: int
) -> list[str]:
    """A node for each shard: ``ranked`` (best first) once each, then round again over those
    with room for another ``chunk_bytes`` chunk, until every shard has one.

    Returns fewer than ``shard_count`` nodes when even that runs out of room; the caller
    refuses the write then.
    """
    placed = list(ranked[:shard_count])
    held = dict.fromkeys(placed, 1)
    while len(placed) < shard_count:
        taken = 0
        for node_id in ranked:
            if len(placed) == shard_count:
                break
            if free_bytes[node_id] >= (held[node_id] + 1) * chunk_bytes:
                placed.append(node_id)
                held[node_id] += 1
                taken += 1
        if taken == 0:
            break
    return placed
