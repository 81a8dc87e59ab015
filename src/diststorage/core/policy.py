"""Redundancy policies: how a stripe becomes shards."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from diststorage.core.errors import InvalidPolicy

MAX_SHARDS = 32

# The recorded policy of a small object kept whole in the metadata database instead of on
# nodes. It is not a policy a client can ask for: the gateway chooses it for small objects
# stored under its default (``inline_object_bytes``).
INLINE_POLICY = "inline"
# ASCII digits: ``\d`` would take other scripts' too ("ec:٤+٢").
_SPEC = re.compile(r"^(?:ec:(?P<k>[0-9]{1,2})\+(?P<m>[0-9]{1,2})|replicate:(?P<n>[0-9]{1,2}))$")


@dataclass(frozen=True, slots=True)
class RedundancyPolicy:
    """``ec:K+M`` (K data + M parity shards; M = 0 is a plain split) or ``replicate:N``."""

    kind: Literal["ec", "replicate"]
    data_shards: int
    parity_shards: int

    @property
    def total_shards(self) -> int:
        return self.data_shards + self.parity_shards

    @property
    def needed_to_read(self) -> int:
        """How many distinct shards rebuild a stripe."""
        return 1 if self.kind == "replicate" else self.data_shards

    @property
    def min_write_nodes(self) -> int:
        """The fewest distinct nodes a write may still commit to (a degraded write).

        ``ec:K+M`` needs K, as MinIO's write quorum does: with M nodes down a write still
        succeeds, its shards doubled up on the live nodes, committed as below target and
        repaired to distinct nodes when they return. (MinIO adds one when K = M so that two
        halves of a split cluster cannot both commit; here the metadata database decides every
        commit alone.) Replicas need two copies, so that one lost disk is not the end of an
        acknowledged write; a plain split (ec:K+0) has no slack and needs all K.
        """
        if self.kind == "replicate":
            return min(2, self.total_shards)
        return self.data_shards

    @property
    def spec(self) -> str:
        if self.kind == "replicate":
            return f"replicate:{self.total_shards}"
        return f"ec:{self.data_shards}+{self.parity_shards}"

    def __str__(self) -> str:
        return self.spec


def policy_for_size(
    default: RedundancyPolicy, size_bytes: int | None, small_object_bytes: int
) -> RedundancyPolicy:
    """The policy for an object stored under the gateway's default.

    A small object under ``ec:K+M`` (M >= 1) is stored as ``replicate:M+1`` instead: it
    survives the same M lost nodes, a read touches one node instead of K and a write M+1
    instead of K+M, and the extra bytes are negligible at that size. Unknown sizes (chunked
    bodies) keep the default.
    """
    if (
        default.kind == "ec"
        and default.parity_shards >= 1
        and size_bytes is not None
        and size_bytes <= small_object_bytes
    ):
        return RedundancyPolicy("replicate", 1, default.parity_shards)
    return default


def policy_for_width(policy: RedundancyPolicy, writable_nodes: int) -> RedundancyPolicy:
    """The default policy fitted to a cluster short of nodes: ``ec:K+M`` on fewer than K+M
    (but at least K+1) writable nodes becomes ``ec:(nodes−M)+M``.

    The object then still survives any M lost nodes, at a little more storage overhead, where
    the same K+M shards squeezed onto fewer nodes would survive only fewer losses until repair.
    On exactly K nodes it is not narrowed: ``ec:(K−M)+M`` does not exist for K <= M and costs
    K/(K−M) bytes per byte for good otherwise, where a doubled-up ``ec:K+M`` write costs
    nothing extra and is repaired to its full distinct placement once nodes return. Other
    policies, and clusters wide enough or too narrow for a write at all, are unchanged.
    """
    if (
        policy.kind != "ec"
        or policy.parity_shards == 0
        or writable_nodes >= policy.total_shards
        or writable_nodes <= policy.data_shards
    ):
        return policy
    return RedundancyPolicy("ec", writable_nodes - policy.parity_shards, policy.parity_shards)


def parse_policy(spec: str) -> RedundancyPolicy:
    """Parses ``ec:4+2``, ``ec:6+0`` or ``replicate:3``; raises InvalidPolicy otherwise."""
    match = _SPEC.match(spec.strip())
    if match is None:
        raise InvalidPolicy(f"redundancy {spec!r} is not ec:K+M or replicate:N")
    if match["n"] is not None:
        copies = int(match["n"])
        if not 1 <= copies <= MAX_SHARDS:
            raise InvalidPolicy(f"replicate:N needs 1 <= N <= {MAX_SHARDS}")
        return RedundancyPolicy("replicate", 1, copies - 1)
    data, parity = int(match["k"]), int(match["m"])
    if data < 1 or data + parity > MAX_SHARDS:
        raise InvalidPolicy(f"ec:K+M needs K >= 1 and K+M <= {MAX_SHARDS}")
    return RedundancyPolicy("ec", data, parity)
