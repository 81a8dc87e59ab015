"""A gateway as several worker processes on the same ports (``--workers``): the supervisor
that starts, watches and stops them, each worker's role, the private channel between them
(relayed heartbeats, metrics) and the merge of their metrics."""

from diststorage.gateway.pool.counters import SiblingCounters
from diststorage.gateway.pool.merge import merge_expositions
from diststorage.gateway.pool.role import WorkerHandoff, WorkerRole, die_with_parent
from diststorage.gateway.pool.siblings import Siblings, SiblingServer
from diststorage.gateway.pool.supervisor import run_supervisor

__all__ = [
    "SiblingCounters",
    "SiblingServer",
    "Siblings",
    "WorkerHandoff",
    "WorkerRole",
    "die_with_parent",
    "merge_expositions",
    "run_supervisor",
]
