"""Weighted rendezvous hashing.

Each node scores ``weight / -ln(u)`` where ``u`` in (0, 1) is a hash of (node, placement key);
the highest scores win. With weight = free bytes, a node receives new shards in proportion to
its free space, and adding or removing a node moves only the shards that must move. The free
space is what each node reports, so it is capped first (weights.py): a node that claims far
more than the others cannot draw every new chunk set.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass

from diststorage.placement.weights import capped_weights

_TWO_64 = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Candidate:
    node_id: str
    free_bytes: int


def _unit_hash(node_id: str, placement_key: str) -> float:
    digest = hashlib.blake2b(f"{node_id}\0{placement_key}".encode(), digest_size=8).digest()
    # Shifted by a half so the value is never 0 or 1: -ln(u) stays finite and non-zero.
    return (int.from_bytes(digest, "big") + 0.5) / _TWO_64


def rank_nodes(
    candidates: Iterable[Candidate], placement_key: str, min_free_bytes: int = 0
) -> list[str]:
    """Node ids with at least ``min_free_bytes`` free, best first for this placement key.

    Callers take the first K+M for the shards of one chunk set; the rest are fallbacks.
    """
    eligible = [c for c in candidates if c.free_bytes >= min_free_bytes and c.free_bytes > 0]
    weights = capped_weights([c.free_bytes for c in eligible])
    scored = [
        (max(weight, 1) / -math.log(_unit_hash(c.node_id, placement_key)), c.node_id)
        for c, weight in zip(eligible, weights, strict=True)
    ]
    scored.sort(reverse=True)
    return [node_id for _, node_id in scored]
