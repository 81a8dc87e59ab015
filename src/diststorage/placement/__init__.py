"""Which nodes hold which shards. Pure: no I/O."""

from diststorage.placement.rendezvous import Candidate, rank_nodes

__all__ = ["Candidate", "rank_nodes"]
