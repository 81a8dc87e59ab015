"""What the workers' leader publishes of its progress with each lease renewal, and how another
gateway reads it back: the repair and GC counters and the repair rate live in the leader's
memory, so without this every other gateway could show only its own idle ones."""

from __future__ import annotations

import json
from typing import Any

from diststorage.core.clock import Clock, utc_now
from diststorage.core.worker import Figures
from diststorage.gateway.workers.collector import GarbageCollector
from diststorage.gateway.workers.repair import RepairWorker


def leader_figures(repair: RepairWorker, collector: GarbageCollector, clock: Clock) -> Figures:
    """This gateway's repair and GC figures, stamped with its wall time."""
    return {
        "published_at": utc_now(clock).isoformat(),
        "state": repair.state.value,
        "rate_bytes_per_s": round(repair.meter.per_second(), 1),
        "bytes_repaired": repair.meter.total,
        "chunks_repaired": repair.counters.chunks_repaired,
        "segments_repaired": repair.counters.segments_repaired,
        "repair_failures": repair.counters.failures,
        "segments_unrecoverable": len(repair.unrecoverable),
        "chunks_found_missing": collector.missing_found,
        "uploads_collected": collector.uploads_collected,
        "orphans_deleted": collector.orphans_deleted,
        "chunks_deleted": collector.garbage_deleted,
    }


def read_figures(published: str | None) -> dict[str, Any] | None:
    """The figures a lease row holds; None when it holds none or something that is not a
    JSON object (a gateway of another version may have written it)."""
    if published is None:
        return None
    try:
        figures = json.loads(published)
    except ValueError:
        return None
    return figures if isinstance(figures, dict) else None
