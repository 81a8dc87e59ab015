"""What the data path measures: how long each call to a node takes, which nodes send blocks
that fail verification or miss their deadline, how many reads needed other shards than
their data shards, and how long metadata queries take.

The fault counts are plain numbers (``NodeStats``) that the dashboard reads directly and the
metrics endpoint exports as counters; the timings are Prometheus histograms. Every series is
made at zero for every node the gateway knows and every call or query kind (``know_nodes``
before each scrape), so that a rate or a ``> 0`` alert works from a node's first scrape on.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterable, Iterator
from enum import StrEnum

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class NodeCall(StrEnum):
    """The chunk calls a gateway makes, as the ``op`` label names them."""

    PUT_CHUNK = "put_chunk"
    PUT_CHUNK_ONCE = "put_chunk_once"
    GET_CHUNK = "get_chunk"
    GET_CHUNK_ONCE = "get_chunk_once"
    DELETE_CHUNK = "delete_chunk"
    LIST_CHUNKS = "list_chunks"


class QueryKind(StrEnum):
    READ = "read"
    WRITE = "write"


# From 100 µs (a loopback GetChunkOnce of a small block) doubling to 13 s (past every deadline).
RPC_BUCKETS_S = tuple(0.0001 * 2**i for i in range(18))
QUERY_BUCKETS_S = tuple(0.0001 * 2**i for i in range(18))


class NodeStats:
    """Per node: blocks that failed verification, and blocks (or calls) that missed their
    deadline; and reads that needed more than their data shards. Counted since this gateway
    started; read by the dashboard's node table."""

    def __init__(self) -> None:
        self._crc_errors: Counter[str] = Counter()
        self._deadline_misses: Counter[str] = Counter()
        self.degraded_reads = 0

    def crc_error(self, node_id: str) -> None:
        """A block from the node failed its digest or CRC, or the node found it corrupt."""
        self._crc_errors[node_id] += 1

    def deadline_missed(self, node_id: str) -> None:
        self._deadline_misses[node_id] += 1

    def degraded_read(self) -> None:
        self.degraded_reads += 1

    def crc_errors(self, node_id: str) -> int:
        return self._crc_errors[node_id]

    def deadline_misses(self, node_id: str) -> int:
        return self._deadline_misses[node_id]


class _StatsCollector(Collector):
    def __init__(self, stats: NodeStats, nodes: DataPathMetrics) -> None:
        self._stats = stats
        self._nodes = nodes

    def collect(self) -> Iterator[Metric]:
        stats = self._stats
        crc = CounterMetricFamily(
            "diststorage_block_crc_errors",
            "Blocks from the node that failed their digest or CRC (or that it found corrupt)",
            labels=["node"],
        )
        late = CounterMetricFamily(
            "diststorage_block_deadline_exceeded",
            "Blocks (and calls) the node did not deliver within their deadline",
            labels=["node"],
        )
        for node_id in self._nodes.known_nodes():
            crc.add_metric([node_id], stats.crc_errors(node_id))
            late.add_metric([node_id], stats.deadline_misses(node_id))
        yield crc
        yield late
        yield CounterMetricFamily(
            "diststorage_degraded_reads",
            "Segment reads that needed shards other than their data shards",
            value=stats.degraded_reads,
        )


class DataPathMetrics:
    """The data path's measurements. Made before the gateway's registry exists (the node
    clients come first), and put on it with ``register``."""

    def __init__(self) -> None:
        self.stats = NodeStats()
        self._nodes: tuple[str, ...] = ()
        self._rpc_seconds = Histogram(
            "diststorage_node_rpc_seconds",
            "Chunk calls to nodes, from the call to its answer (a stream: to its last message)",
            ["op", "node"],
            buckets=RPC_BUCKETS_S,
            registry=None,
        )
        self._query_seconds = Histogram(
            "diststorage_meta_query_seconds",
            "Metadata database operations (a read, or a write transaction), retries included",
            ["op"],
            buckets=QUERY_BUCKETS_S,
            registry=None,
        )
        for kind in QueryKind:
            self._query_seconds.labels(kind.value)

    def register(self, registry: CollectorRegistry) -> None:
        registry.register(self._rpc_seconds)
        registry.register(self._query_seconds)
        registry.register(_StatsCollector(self.stats, self))

    def observe_rpc(self, call: NodeCall, node_id: str, seconds: float) -> None:
        self._rpc_seconds.labels(call.value, node_id).observe(seconds)

    def observe_query(self, kind: str, seconds: float) -> None:
        self._query_seconds.labels(kind).observe(seconds)

    def know_nodes(self, node_ids: Iterable[str]) -> None:
        """Makes every node's series (at zero if new) and drops those of nodes forgotten."""
        nodes = tuple(sorted(node_ids))
        for gone in set(self._nodes) - set(nodes):
            for call in NodeCall:
                with contextlib.suppress(KeyError):
                    self._rpc_seconds.remove(call.value, gone)
        for node_id in nodes:
            for call in NodeCall:
                self._rpc_seconds.labels(call.value, node_id)
        self._nodes = nodes

    def known_nodes(self) -> tuple[str, ...]:
        return self._nodes
