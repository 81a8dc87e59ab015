"""How an object's redundancy is chosen: the one place, pure.

A policy asked for must be one the operator allows (``core.policy_limits``), and is then
honoured exactly, each shard on its own node, or refused: a policy wider than the cluster's
member nodes can never be placed (400 InvalidPolicy, as any policy the cluster cannot hold by
design), one wider than the nodes writable right now can be once they are back (503
NotEnoughNodes, retry later). Such a policy is never squeezed onto fewer nodes, which would
give the client less protection than it asked for while answering 201.

Without one, the gateway's default is fitted: a small object of known size is kept inline in
the metadata database, a smallish one is replicated (``policy_for_size``), and on a cluster
short of nodes ``ec:K+M`` narrows to keep M parity shards (``policy_for_width``). The cluster
must then be wide enough to ever reach the policy's target, and have enough writable nodes
now for at least a degraded write; the default stays writable that way while a node is down.
"""

from __future__ import annotations

from dataclasses import dataclass

from diststorage.core.errors import InvalidPolicy, NotEnoughNodes
from diststorage.core.policy import RedundancyPolicy, policy_for_size, policy_for_width
from diststorage.core.policy_limits import check_requested_policy
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.objects.ports import ClusterWidth


@dataclass(frozen=True, slots=True)
class KeepInline:
    """The bytes go into the metadata database with the object row (``inline_object_bytes``).

    Their durability is then the database's, which every object already depends on: its
    layout lives there. On nodes, each such object would cost three fsync'd files and as many
    round trips for a few kilobytes.
    """


@dataclass(frozen=True, slots=True)
class WriteChunks:
    """The bytes are striped onto nodes under ``policy``."""

    policy: RedundancyPolicy


PolicyChoice = KeepInline | WriteChunks


def choose_policy(
    requested: RedundancyPolicy | None,
    declared_size: int | None,
    cluster: ClusterWidth,
    settings: GatewaySettings,
) -> PolicyChoice:
    """Where and how an object of ``declared_size`` bytes (None: unknown) is stored.

    A requested policy: raises InvalidPolicy when the operator does not allow it or it is
    wider than the cluster's member nodes, NotEnoughNodes when it is wider than the nodes
    writable now. The default: raises NotEnoughNodes for a policy wider than the whole
    cluster (its member nodes: it could never reach its target) or when fewer than its
    minimum are writable now; a temporary lack of nodes short of that only makes the write
    degraded. Inline objects need no node at all, and do not even count them: counting costs
    more than the rest of this decision, thousands of times a second for small PUTs.
    """
    if requested is not None:
        check_requested_policy(requested, settings.policy_limits)
        require_distinct_nodes(requested, cluster.member_count(), cluster.writable_count())
        return WriteChunks(requested)
    if _fits_inline(declared_size, settings.inline_object_bytes):
        return KeepInline()
    writable_nodes = cluster.writable_count()
    member_nodes = cluster.member_count()
    fitted = policy_for_size(settings.default_policy, declared_size, settings.small_object_bytes)
    policy = policy_for_width(fitted, writable_nodes)
    if policy.total_shards > member_nodes:
        raise NotEnoughNodes(
            f"{policy.spec} needs {policy.total_shards} nodes; the cluster has {member_nodes}"
        )
    require_writable_nodes(policy, writable_nodes)
    return WriteChunks(policy)


def require_distinct_nodes(policy: RedundancyPolicy, member_nodes: int, writable: int) -> None:
    """Raises InvalidPolicy when ``policy`` has more shards than the cluster has member nodes,
    NotEnoughNodes when it has more than are writable now: either way some node would get two
    shards of a stripe, and lose both at once."""
    if policy.total_shards > member_nodes:
        raise InvalidPolicy(
            f"redundancy {policy.spec} needs {policy.total_shards} distinct nodes; "
            f"the cluster has {member_nodes}"
        )
    if policy.total_shards > writable:
        raise NotEnoughNodes(
            f"redundancy {policy.spec} needs {policy.total_shards} distinct writable nodes; "
            f"{writable} are up"
        )


def require_writable_nodes(policy: RedundancyPolicy, writable: int) -> None:
    """Raises NotEnoughNodes when even a degraded write under ``policy`` cannot be made."""
    if writable < policy.min_write_nodes:
        raise NotEnoughNodes(
            f"{policy.spec} needs at least {policy.min_write_nodes} writable nodes "
            f"({policy.total_shards} for full redundancy); {writable} are up"
        )


def _fits_inline(declared_size: int | None, inline_object_bytes: int) -> bool:
    return (
        inline_object_bytes > 0
        and declared_size is not None
        and declared_size <= inline_object_bytes
    )
