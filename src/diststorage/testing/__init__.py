"""Helpers shared by the test suite and the benchmarks."""

from diststorage.testing.clock import FakeClock
from diststorage.testing.cluster import running_cluster
from diststorage.testing.faults import Faults

__all__ = ["FakeClock", "Faults", "running_cluster"]
