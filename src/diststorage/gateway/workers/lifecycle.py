"""Node lifecycle changes by an operator: drain a node, or make it active again.

A draining node takes no new chunks and repair moves every chunk off it. The change is
persisted first and then applied to this gateway's node table, so a restart keeps it.
"""

from __future__ import annotations

from typing import Protocol

from diststorage.core.policy import RedundancyPolicy
from diststorage.meta import MaintenanceStore, NodeLifecycle


class LifecycleTable(Protocol):
    """The node table as a lifecycle change touches it (``Inventory``)."""

    def set_lifecycle(self, node_id: str, lifecycle: NodeLifecycle) -> None: ...

    def member_count(self) -> int: ...


async def set_node_lifecycle(
    maintenance: MaintenanceStore,
    nodes: LifecycleTable,
    node_id: str,
    lifecycle: NodeLifecycle,
    default_policy: RedundancyPolicy,
) -> str | None:
    """Records the node's new lifecycle; returns a warning for the operator, if any.

    Draining below the default policy's width leaves repair nowhere to move such objects'
    chunks until a node is added: the change is made, and the warning says so.
    """
    await maintenance.set_node_lifecycle(node_id, lifecycle)
    nodes.set_lifecycle(node_id, lifecycle)
    members = nodes.member_count()
    if lifecycle == NodeLifecycle.DRAINING and members < default_policy.total_shards:
        return (
            f"only {members} active nodes remain and {default_policy.spec} needs "
            f"{default_policy.total_shards} distinct ones: chunks of such objects cannot move "
            "until a node is added"
        )
    return None
