"""Helpers shared by the test suite and the benchmarks."""

from diststorage.testing.accounts import make_accounts
from diststorage.testing.clock import FakeClock
from diststorage.testing.cluster import running_cluster
from diststorage.testing.fakes import (
    BytesBody,
    DamageLog,
    FakeChunkStream,
    FakeNode,
    FakeNodes,
    Pipeline,
    in_memory_pipeline,
)
from diststorage.testing.faults import Faults
from diststorage.testing.signing import sigv4_middleware

__all__ = [
    "BytesBody",
    "DamageLog",
    "FakeChunkStream",
    "FakeClock",
    "FakeNode",
    "FakeNodes",
    "Faults",
    "Pipeline",
    "in_memory_pipeline",
    "make_accounts",
    "running_cluster",
    "sigv4_middleware",
]
