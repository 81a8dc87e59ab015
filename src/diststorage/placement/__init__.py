"""Which nodes hold which shards. Pure: no I/O."""

from diststorage.placement.rendezvous import Candidate, rank_nodes
from diststorage.placement.sharing import share_out

__all__ = ["Candidate", "rank_nodes", "share_out"]
