"""What redundancy a client may ask for: the limits an operator sets, pure.

The native API lets a client pin an object's policy (``X-Redundancy``). Left unbounded, that
lets any client opt out of redundancy (``ec:6+0``, ``replicate:1``) or make the cluster store
many bytes per byte sent (``replicate:6``, ``ec:1+5``). So a requested policy is held to the
operator's limits: by default it must survive at least one lost node and cost at most three
bytes stored per byte of object — the durability and the cost of the ``replicate:3`` the
gateway itself gives small objects, which is also what Ceph, HDFS and Swift default to. An
operator who wants clients to choose only among named policies lists them instead, as
storage classes (MinIO) or pools (Ceph) are fixed by an administrator; listed policies are
taken as the operator's informed choice and skip the bounds. The gateway's own default is
always allowed: it is the operator's choice already.

The width of the cluster is a separate, later check (``gateway.objects.policy_choice``).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from diststorage.core.errors import InvalidPolicy
from diststorage.core.policy import RedundancyPolicy


@dataclass(frozen=True, slots=True)
class PolicyLimits:
    """``allowed`` empty: any policy within the bounds; else exactly these (and ``default``)."""

    default: RedundancyPolicy
    allowed: frozenset[RedundancyPolicy]
    min_spare_shards: int
    max_overhead: float


def spare_shards(policy: RedundancyPolicy) -> int:
    """How many shards (nodes, once placed) a stripe may lose and still be read."""
    return policy.total_shards - policy.needed_to_read


def storage_overhead(policy: RedundancyPolicy) -> float:
    """Bytes stored per byte of object: N for ``replicate:N``, (K+M)/K for ``ec:K+M``."""
    return policy.total_shards / policy.needed_to_read


def check_requested_policy(policy: RedundancyPolicy, limits: PolicyLimits) -> None:
    """Raises InvalidPolicy when a client may not ask for ``policy``."""
    if policy == limits.default:
        return
    if limits.allowed:
        if policy not in limits.allowed:
            raise InvalidPolicy(
                f"redundancy {policy.spec} is not allowed here; ask for one of "
                f"{_listed(limits.allowed | {limits.default})}, or none for the default"
            )
        return
    spare = spare_shards(policy)
    if spare < limits.min_spare_shards:
        raise InvalidPolicy(
            f"redundancy {policy.spec} survives {spare} lost nodes; this gateway needs "
            f"policies that survive at least {limits.min_spare_shards}"
        )
    overhead = storage_overhead(policy)
    if overhead > limits.max_overhead:
        raise InvalidPolicy(
            f"redundancy {policy.spec} stores {overhead:.3g} bytes per byte; this gateway "
            f"allows at most {limits.max_overhead:.3g}"
        )


def _listed(policies: Collection[RedundancyPolicy]) -> str:
    return ", ".join(sorted(policy.spec for policy in policies))
