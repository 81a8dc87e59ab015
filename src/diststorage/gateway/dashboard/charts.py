"""Pure shaping of status dicts into what the partials draw: the durability histogram's bars,
the capacity figures, the heatmap's colour classes and the sparklines' points. No I/O; the
templates turn these into SVG and CSS classes (no inline styles: the CSP forbids them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from diststorage.core.policy import RedundancyPolicy
from diststorage.gateway.dashboard.throughput import Sample

BAR_MAX_PX = 260
# A bar for a count that is not zero is never thinner than this: one stripe at risk among
# millions must be seen (ceph/ceph#44091 hid degraded objects below 0.5 %).
BAR_MIN_PX = 3
HEAT_CLASSES = 10
SPARK_WIDTH = 300
SPARK_HEIGHT = 48


def _bar_class(spare: int, full: int) -> str:
    if spare >= full:
        return "spare-full"
    if spare == 0:
        return "spare-none"
    return "spare-one" if spare == 1 else "spare-some"


def _width(count: int, largest: int) -> int:
    if count <= 0 or largest <= 0:
        return 0
    return max(BAR_MIN_PX, round(BAR_MAX_PX * count / largest))


def durability_bars(repair: dict[str, Any], default_policy: RedundancyPolicy) -> dict[str, Any]:
    """The histogram: per policy, one bar per number of shards its stripes can still lose
    (full down to 0), then the unreadable ones; inline objects as their own bar.

    From ``repair["durability"]`` when the gateway reports it; else from the backlog alone
    (the stripes below target, at the worst one's spare), ``exact`` false.
    """
    durability = repair.get("durability")
    if durability is None:
        return _from_backlog(repair, default_policy)
    rows: list[dict[str, Any]] = []
    counts: list[int] = [int(durability.get("inline_objects") or 0)]
    for policy in durability["policies"]:
        full = int(policy["shards"]) - int(policy["needed"])
        bars = []
        for spare_text, count in sorted(
            policy["stripes_by_spare"].items(), key=lambda kv: -int(kv[0])
        ):
            spare = int(spare_text)
            bars.append({"spare": str(spare), "count": int(count), "cls": _bar_class(spare, full)})
            counts.append(int(count))
        unreadable = int(policy.get("unreadable_stripes") or 0)
        bars.append({"spare": "unreadable", "count": unreadable, "cls": "unreadable"})
        counts.append(unreadable)
        rows.append({"policy": policy["policy"], "full": full, "bars": bars})
    largest = max(counts, default=0)
    for row in rows:
        for bar in row["bars"]:
            bar["width"] = _width(bar["count"], largest)
    inline = int(durability.get("inline_objects") or 0)
    return {
        "exact": True,
        "policies": rows,
        "inline": {"count": inline, "width": _width(inline, largest)},
        "refreshed_at": durability.get("totals_refreshed_at"),
    }


def _from_backlog(repair: dict[str, Any], policy: RedundancyPolicy) -> dict[str, Any]:
    full = policy.total_shards - policy.needed_to_read
    below = int(repair.get("stripes_below_target") or 0)
    spare = repair.get("fewest_spare_shards")
    bars = []
    if below > 0 and spare is not None:
        spare_key = "unreadable" if spare < 0 else str(spare)
        cls = "unreadable" if spare < 0 else _bar_class(int(spare), full)
        bars.append({"spare": spare_key, "count": below, "cls": cls, "width": BAR_MAX_PX})
    return {
        "exact": False,
        "policies": [{"policy": policy.spec, "full": full, "bars": bars}],
        "inline": None,
        "refreshed_at": None,
    }


def heat_class(used_bytes: int, capacity_bytes: int) -> str:
    """``u0`` (empty) … ``u9`` (90 % full or more)."""
    if capacity_bytes <= 0:
        return f"u{HEAT_CLASSES - 1}"
    share = min(max(used_bytes / capacity_bytes, 0.0), 1.0)
    return f"u{min(int(share * HEAT_CLASSES), HEAT_CLASSES - 1)}"


def capacity_figures(nodes: Sequence[dict[str, Any]], policy: RedundancyPolicy) -> dict[str, Any]:
    """Raw capacity of the nodes that count (not draining, heard at all), and what the default
    policy makes of the free space: usable = raw free × shards needed / all shards."""
    members = [n for n in nodes if n["lifecycle"] == "active"]
    raw = sum(n["capacity"] for n in members)
    used = sum(n["used"] for n in members)
    free = sum(n["free"] for n in members)
    usable_free = free * policy.needed_to_read // max(policy.total_shards, 1)
    used_px = 0 if raw <= 0 else max(BAR_MIN_PX if used else 0, round(BAR_MAX_PX * used / raw))
    return {
        "raw_bytes": raw,
        "used_bytes": used,
        "free_bytes": free,
        "usable_free_bytes": usable_free,
        "policy": policy.spec,
        "used_px": used_px,
        "bar_px": BAR_MAX_PX,
    }


def sparkline(values: Sequence[float | None]) -> str:
    """SVG polyline points for values left to right (gaps drawn at 0), scaled to the largest."""
    if not values:
        return ""
    top = max((v for v in values if v is not None), default=0.0) or 1.0
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    return " ".join(
        f"{i * step:.1f},{SPARK_HEIGHT - (v or 0.0) / top * (SPARK_HEIGHT - 2):.1f}"
        for i, v in enumerate(values)
    )


def throughput_figures(samples: Sequence[Sample]) -> dict[str, Any]:
    """The latest sample, sparklines of the window, and the series for uPlot (dash.js)."""
    latest = samples[-1] if samples else None
    return {
        "latest": latest,
        "ops_line": sparkline([s.get_per_s + s.put_per_s for s in samples]),
        "p99_line": sparkline([s.p99_s for s in samples]),
        "series": [
            [round(s.at_s, 1) for s in samples],
            [round(s.get_per_s, 2) for s in samples],
            [round(s.put_per_s, 2) for s in samples],
            [round(s.out_bytes_per_s / 1e6, 3) for s in samples],
            [round(s.in_bytes_per_s / 1e6, 3) for s in samples],
            [None if s.p50_s is None else round(s.p50_s * 1000, 2) for s in samples],
            [None if s.p99_s is None else round(s.p99_s * 1000, 2) for s in samples],
        ],
        "width": SPARK_WIDTH,
        "height": SPARK_HEIGHT,
    }
