"""A cluster of real gateway and node processes on this machine: `diststorage up` and tests."""

from diststorage.local.cluster import LocalCluster, free_port

__all__ = ["LocalCluster", "free_port"]
