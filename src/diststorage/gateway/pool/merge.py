"""One gateway's metrics from its workers' expositions: what a scrape of any worker answers.

A scrape reaches one worker (whichever the kernel hands the connection to), so that worker
gathers its siblings' expositions (``siblings.Siblings.scrape_all``) and merges them with its
own, family by family, by the rules the metrics' own documentation gives for adding up
gateways (``api/metrics.py``, ``api/durability_metrics.py``, deploy/prometheus/alerts.yml):

- what each process counts of its own work (counters, histograms, summaries: requests, bytes,
  RPC latencies, repair's counters, which grow on the leader only) is **summed**, and so are
  the process's resources (``process_*`` memory, CPU seconds, open descriptors);
- what every worker reads alike from the node table and the nodes' own reports (``SHARED``:
  node liveness, capacity, scrub counters, which are the node's since it started) is taken
  from **the worker answering**: summing it would count each node once per worker;
- other gauges (the database's durability figures, the leader flag, build info) take the
  **max**; ``MIN`` families (an ETA, start times) the min.

A sibling that did not answer in time is left out; ``diststorage_gateway_workers`` says how
many workers the figures cover. prometheus_client's multiprocess mode was not used: it covers
only the metric objects kept in its files, not the collectors that read the node table, the
data path's stats or the workers at each scrape, and its gauges need a mode each anyway.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector

SHARED = frozenset(
    {
        "diststorage_nodes",
        "diststorage_node_up",
        "diststorage_node_capacity_bytes",
        "diststorage_node_used_bytes",
        "diststorage_node_heartbeat_age_seconds",
        "diststorage_node_info",
        "diststorage_scrub_verified_bytes",
        "diststorage_scrub_corrupt_chunks",
        "diststorage_scrub_passes",
        "diststorage_scrub_last_pass_timestamp_seconds",
        "process_max_fds",
    }
)
MIN = frozenset({"diststorage_repair_eta_seconds", "process_start_time_seconds"})
_SUMMED_TYPES = frozenset({"counter", "histogram", "summary", "gaugehistogram"})

SampleKey = tuple[str, tuple[tuple[str, str], ...]]


def merge_expositions(own: bytes, siblings: Iterable[bytes]) -> bytes:
    """``own`` (the answering worker's exposition) merged with its siblings' (see the module
    docstring), in the text format, plus ``diststorage_gateway_workers``."""
    others = [_families(exposition) for exposition in siblings]
    merged: list[Metric] = []
    mine = _families(own)
    for name, family in mine.items():
        merged.append(_merge(family, [o[name] for o in others if name in o]))
    for index, other in enumerate(others):
        for name, family in other.items():
            if name not in mine and all(name not in o for o in others[:index]):
                merged.append(_merge(family, [o[name] for o in others[index + 1 :] if name in o]))
    workers = Metric(
        "diststorage_gateway_workers", "Worker processes whose figures this scrape covers", "gauge"
    )
    workers.add_sample("diststorage_gateway_workers", {}, float(1 + len(others)))
    merged.append(workers)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(merged))
    return generate_latest(registry)


def _families(exposition: bytes) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(exposition.decode())}


def _merge(own: Metric, others: list[Metric]) -> Metric:
    if own.name in SHARED or not others:
        return own
    values: dict[SampleKey, float] = {}
    for family in (own, *others):
        for sample in family.samples:
            key: SampleKey = (sample.name, tuple(sorted(sample.labels.items())))
            seen = values.get(key)
            values[key] = (
                sample.value if seen is None else _combine(own, sample.name, seen, sample.value)
            )
    merged = Metric(own.name, own.documentation, own.type, own.unit)
    for (sample_name, labels), value in values.items():
        merged.add_sample(sample_name, dict(labels), value)
    return merged


def _combine(family: Metric, sample_name: str, a: float, b: float) -> float:
    if family.name in MIN or sample_name.endswith("_created"):
        return min(a, b)
    if family.type in _SUMMED_TYPES or family.name.startswith("process_"):
        return a + b
    return max(a, b)


class _Fixed(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)
