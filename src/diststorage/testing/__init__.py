"""Helpers shared by the test suite and the benchmarks."""

from diststorage.testing.cluster import running_cluster

__all__ = ["running_cluster"]
