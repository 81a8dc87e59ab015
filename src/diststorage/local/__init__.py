"""A cluster of real gateway and node processes on this machine: `diststorage up` and tests."""

from diststorage.local.cluster import LocalCluster, TlsFiles, free_port

__all__ = ["LocalCluster", "TlsFiles", "free_port"]
