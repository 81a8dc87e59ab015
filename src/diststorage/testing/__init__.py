"""Helpers shared by the test suite and the benchmarks."""

from diststorage.testing.clock import FakeClock
from diststorage.testing.cluster import running_cluster

__all__ = ["FakeClock", "running_cluster"]
