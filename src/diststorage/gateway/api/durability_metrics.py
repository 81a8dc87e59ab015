"""Prometheus metrics of durability, repair and garbage collection, served with the API's at
/_/metrics.

A custom collector: every scrape builds the families from the durability monitor's last
snapshot (taken in the background, a few seconds old at most) and from the workers' in-memory
counters, so a scrape never runs a database query and many scrapes cannot pile queries up.

The durability gauges come from the database and read the same on every gateway (dashboards
take ``max``). Repair and GC run on the leader only: their counters grow only there (``sum``
works), and ``diststorage_repair_eta_seconds`` is finite only where repair makes progress, so
take its ``min``. Every series, each label value included, is present from the first scrape.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from diststorage.gateway.services import Services
from diststorage.gateway.workers.durability import (
    DurabilityReport,
    PolicyDurability,
    durability_histogram,
    fewest_spare,
    repair_block_bytes,
    repair_eta_s,
)
from diststorage.meta import RepairBacklog, StripeTotals

# How a repaired segment's attempt ended, each a series from the start.
REPAIR_OUTCOMES = ("repaired", "failed")


class DurabilityCollector:
    """Registered on ``ApiMetrics.registry``; reads ``services`` at each scrape."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def describe(self) -> Iterator[Metric]:
        """The families, for the registry's name check (no database either)."""
        return self.collect()

    def collect(self) -> Iterator[Metric]:
        services = self._services
        report = services.durability.latest or self._nothing_yet()
        yield from _durability(report, services)
        yield from _repair(report.backlog, services)
        yield from _garbage(services)

    def _nothing_yet(self) -> DurabilityReport:
        """Before the first snapshot: the default policy, nothing counted."""
        default = self._services.settings.default_policy.spec
        policies = durability_histogram(StripeTotals({}, 0), (), default)
        return DurabilityReport(
            policies,
            0,
            self._services.durability.totals_refreshed_at,
            RepairBacklog(0, 0, 0),
            (),
        )


def _durability(report: DurabilityReport, services: Services) -> Iterator[Metric]:
    stripes = GaugeMetricFamily(
        "diststorage_stripes",
        "Stored stripes by policy and by how many more nodes each can lose and stay readable",
        labels=["policy", "spare"],
    )
    unreadable = GaugeMetricFamily(
        "diststorage_stripes_unreadable",
        "Stored stripes with fewer readable shards than a read needs, by policy",
        labels=["policy"],
    )
    for policy in report.policies:
        _add_policy(stripes, unreadable, policy)
    yield stripes
    yield unreadable
    yield GaugeMetricFamily(
        "diststorage_inline_objects",
        "Objects and parts kept whole in the metadata database, not on nodes",
        value=report.inline_objects,
    )
    yield GaugeMetricFamily(
        "diststorage_stripes_below_target",
        "Stripes queued for repair or with a shard on a node that is not healthy",
        value=report.backlog.stripes_below_target,
    )
    yield GaugeMetricFamily(
        "diststorage_fewest_spare_shards",
        "Fewest further node losses any stored stripe survives; negative: short already",
        value=fewest_spare(report, services.settings.default_policy),
    )
    yield GaugeMetricFamily(
        "diststorage_durability_snapshot_timestamp_seconds",
        "When the durability and backlog figures were read from the database (0: not yet)",
        value=services.durability.latest_at_s,
    )


def _add_policy(
    stripes: GaugeMetricFamily, unreadable: GaugeMetricFamily, policy: PolicyDurability
) -> None:
    for spare, count in policy.stripes_by_spare.items():
        stripes.add_metric([policy.policy, str(spare)], count)
    unreadable.add_metric([policy.policy], policy.unreadable_stripes)


def _repair(backlog: RepairBacklog, services: Services) -> Iterator[Metric]:
    repair, settings = services.repair, services.settings
    yield GaugeMetricFamily(
        "diststorage_segments_unrecoverable",
        "Segments the repair worker found with too few readable shards and none that may "
        "come back (on the leader)",
        value=len(repair.unrecoverable),
    )
    yield GaugeMetricFamily(
        "diststorage_repair_queue_segments",
        "Segments in the repair queue",
        value=backlog.segments_queued,
    )
    yield GaugeMetricFamily(
        "diststorage_repair_queue_stripes",
        "Stripes of the segments in the repair queue",
        value=backlog.stripes_queued,
    )
    yield CounterMetricFamily(
        "diststorage_repair_bytes", "Bytes rebuilt or moved by repair", value=repair.meter.total
    )
    yield CounterMetricFamily(
        "diststorage_repair_chunks",
        "Chunks rebuilt or moved by repair",
        value=repair.counters.chunks_repaired,
    )
    segments = CounterMetricFamily(
        "diststorage_repair_segments",
        "Segment repair attempts by outcome: brought to full redundancy, or failed (retried)",
        labels=["outcome"],
    )
    segments.add_metric(["repaired"], repair.counters.segments_repaired)
    segments.add_metric(["failed"], repair.counters.failures)
    yield segments
    eta_s = repair_eta_s(
        backlog.stripes_below_target, repair_block_bytes(settings), repair.meter.per_second()
    )
    yield GaugeMetricFamily(
        "diststorage_repair_eta_seconds",
        "Time to rebuild the stripes below target at this gateway's repair rate: 0 with none, "
        "+Inf where repair makes no progress (take the min over gateways)",
        value=eta_s,
    )
    yield GaugeMetricFamily(
        "diststorage_repair_rate_limit_bytes_per_second",
        "Bandwidth limit of repair, moves and rebalancing (--repair-rate)",
        value=settings.repair_bytes_per_s,
    )
    yield GaugeMetricFamily(
        "diststorage_worker_leader",
        "1 on the gateway that holds the background workers' lease, else 0",
        value=int(services.lease.is_leader),
    )


def _garbage(services: Services) -> Iterator[Metric]:
    collector = services.collector
    yield CounterMetricFamily(
        "diststorage_gc_chunks_deleted",
        "Queued garbage chunks deleted from their nodes",
        value=collector.garbage_deleted,
    )
    yield CounterMetricFamily(
        "diststorage_gc_uploads_collected",
        "Abandoned pending uploads collected",
        value=collector.uploads_collected,
    )
    yield CounterMetricFamily(
        "diststorage_gc_orphans_deleted",
        "Chunks no metadata referenced, deleted from their nodes",
        value=collector.orphans_deleted,
    )
    yield CounterMetricFamily(
        "diststorage_chunks_found_missing",
        "Chunks the audit found gone from their node's disk (marked damaged, repaired)",
        value=collector.missing_found,
    )
