"""How an object's redundancy is chosen: the one place, pure.

A policy asked for is honoured exactly. Without one, the gateway's default is fitted: a small
object of known size is kept inline in the metadata database, a smallish one is replicated
(``policy_for_size``), and on a cluster short of nodes ``ec:K+M`` narrows to keep M parity
shards (``policy_for_width``). Either way the cluster must be wide enough to ever reach the
policy's target, and have enough writable nodes now for at least a degraded write.
"""

from __future__ import annotations

from dataclasses import dataclass

from diststorage.core.errors import NotEnoughNodes
from diststorage.core.policy import RedundancyPolicy, policy_for_size, policy_for_width
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

    Raises NotEnoughNodes for a policy wider than the whole cluster (its member nodes: it
    could never reach its target) or when fewer than its minimum are writable now; a
    temporary lack of nodes short of that only makes the write degraded. Inline objects need
    no node at all, and do not even count them: counting costs more than the rest of this
    decision, thousands of times a second for small PUTs.
    """
    if requested is None and _fits_inline(declared_size, settings.inline_object_bytes):
        return KeepInline()
    writable_nodes = cluster.writable_count()
    member_nodes = cluster.member_count()
    if requested is None:
        fitted = policy_for_size(
            settings.default_policy, declared_size, settings.small_object_bytes
        )
        policy = policy_for_width(fitted, writable_nodes)
    else:
        policy = requested
    if policy.total_shards > member_nodes:
        raise NotEnoughNodes(
            f"{policy.spec} needs {policy.total_shards} nodes; the cluster has {member_nodes}"
        )
    require_writable_nodes(policy, writable_nodes)
    return WriteChunks(policy)


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
