"""The chaos run's results: figures with targets, tables, and the JSON document."""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from bench.chaos.repair import RepairSample, busy_foreground, status_at, statuses_between
from bench.common.load.stats import MB, LoadStats, PhaseLoad
from bench.common.report import Row, format_table, rows_table

TARGET_REPAIR_SHARE_PCT = 70.0
SHORT_WINDOW_S = 5.0
OP_KINDS = ("PUT", "GET", "DELETE")
# The kind runner.py gives a PUT refused for room: the nodes out when it was refused.
ROOM_REFUSAL = re.compile(r"^PUT HTTP 507\b.*\((\d+) nodes out\)$")


@dataclass(frozen=True)
class FillSummary:
    """The node filled up during the faults (``filler.py``)."""

    node: int | None
    capacity_bytes: int
    shard_bytes: int
    margin_bytes: int
    objects: int
    refusals: dict[str, int]
    filled_at_s: float | None
    load_puts_at_fill: int | None
    free_while_full: tuple[int, int] | None
    capacity_lost_at_s: float | None = None


@dataclass
class FaultSummary:
    budget_nodes: int
    budget: str = "shards"
    kills: int = 0
    pauses: int = 0
    max_unavailable: int = 0
    late_nodes: list[int] = field(default_factory=list)
    held_back: int = 0
    events: list[str] = field(default_factory=list)
    gateways: int = 1
    gateway_kills: int = 0
    kills_by_gateway: dict[int, int] = field(default_factory=dict)
    late_gateways: int = 0
    database: str = "sqlite"
    database_restarts: int = 0
    database_away_s: list[float] = field(default_factory=list)
    fill: FillSummary | None = None


@dataclass
class ChaosRun:
    """Everything one run found out; filled in as the phases go."""

    profile: str
    seed: int
    clients: int
    chaos_s: float
    nodes: int
    redundancy: str
    gateway_args: list[str]
    with_repair: bool
    stats: LoadStats
    faults: FaultSummary
    repair_samples: list[RepairSample] = field(default_factory=list)
    faults_stopped_s: float | None = None
    all_live_s: float | None = None
    repaired_s: float | None = None
    # The replacement phase: (repair first seen working, zero stripes below target again).
    replace_window_s: tuple[float, float] | None = None
    committed_objects: int = 0
    committed_bytes: int = 0
    failures: list[str] = field(default_factory=list)
    log_issues: dict[str, Any] = field(default_factory=dict)
    load_at_start: list[float] = field(default_factory=lambda: [*os.getloadavg()])


# -- derived figures --------------------------------------------------------------------------


@dataclass(frozen=True)
class RepairFigures:
    time_to_zero_s: float | None = None
    bytes_repaired: int | None = None
    mb_s: float | None = None
    peak_below_target: int | None = None
    below_target_at_stop: int | None = None
    bytes_repaired_during_chaos: int | None = None
    # The load while repair was busy or throttled, between all nodes being back and zero.
    busy_foreground_bytes: int = 0
    busy_s: float = 0.0
    # The rebuild of a replaced node: bytes repaired and seconds, repair working to zero.
    replace_bytes: int | None = None
    replace_s: float | None = None

    @property
    def replace_mb_s(self) -> float | None:
        if self.replace_bytes is None or not self.replace_s:
            return None
        return self.replace_bytes / MB / self.replace_s

    @property
    def busy_foreground_mb_s(self) -> float | None:
        return self.busy_foreground_bytes / MB / self.busy_s if self.busy_s > 0 else None


def repair_figures(run: ChaosRun) -> RepairFigures:
    samples = run.repair_samples
    stop = run.faults_stopped_s
    chaos = run.stats.phase("chaos")
    if not samples or stop is None or chaos is None:
        return RepairFigures()
    during = statuses_between(samples, chaos.started_s, stop)
    at_start, at_stop = status_at(samples, chaos.started_s), status_at(samples, stop)
    chaos_bytes = None
    if at_start is not None and at_stop is not None:
        chaos_bytes = at_stop.bytes_repaired - at_start.bytes_repaired
    figures = RepairFigures(
        peak_below_target=max((s.stripes_below_target for s in during), default=None),
        below_target_at_stop=None if at_stop is None else at_stop.stripes_below_target,
        bytes_repaired_during_chaos=chaos_bytes,
    )
    at_zero = None if run.repaired_s is None else status_at(samples, run.repaired_s)
    if run.repaired_s is None or at_stop is None or at_zero is None:
        return figures
    seconds = run.repaired_s - stop
    repaired = at_zero.bytes_repaired - at_stop.bytes_repaired
    # Foreground throughput under repair is best measured over the replacement phase, a long
    # repair; after the faults the backlog may be gone in a second or two.
    window = run.replace_window_s or (run.all_live_s or stop, run.repaired_s)
    moved, busy_s = busy_foreground(samples, *window)
    if run.replace_window_s is not None:
        first, last = (status_at(samples, t) for t in run.replace_window_s)
        if first is not None and last is not None:
            figures = replace(
                figures,
                replace_bytes=last.bytes_repaired - first.bytes_repaired,
                replace_s=run.replace_window_s[1] - run.replace_window_s[0],
            )
    return replace(
        figures,
        time_to_zero_s=seconds,
        bytes_repaired=repaired,
        mb_s=repaired / MB / seconds if seconds > 0 else None,
        busy_foreground_bytes=moved,
        busy_s=busy_s,
    )


def _ops_detail(phase: PhaseLoad) -> str:
    ops_s = sum(phase.ops.values()) / phase.wall_s if phase.wall_s > 0 else 0.0
    detail = f"{phase.wall_s:.0f} s, {ops_s:.1f} ops/s, {sum(phase.errors.values())} errors"
    if phase.bytes_wasted:
        detail += f" (their transfers: {phase.wasted_mb_s:,.1f} MB/s of it)"
    return detail


def _phase_row(measure: str, phase: PhaseLoad | None) -> Row:
    if phase is None:
        return Row("throughput", measure, None, "MB/s", "not reached")
    return Row("throughput", measure, phase.mb_s, "MB/s", _ops_detail(phase))


def _share_row(measure: str, value: float | None, quiet: float | None, target: bool) -> Row:
    share = value / quiet * 100 if value is not None and quiet else None
    target_pct = TARGET_REPAIR_SHARE_PCT if target else None
    return Row("throughput", measure, share, "%", "same load mix and clients", target_pct)


def _throughput_rows(run: ChaosRun, figures: RepairFigures) -> list[Row]:
    stats = run.stats
    baseline = stats.phase("baseline")
    quiet = baseline.mb_s if baseline else None
    rows = [
        _phase_row("foreground, quiet baseline", baseline),
        _phase_row("foreground, during the faults", stats.phase("chaos")),
    ]
    after = stats.phase("after faults")
    if after is not None:  # --without-repair
        rows.append(_phase_row("foreground, after the faults", after))
        rows.append(_share_row("foreground after the faults / quiet", after.mb_s, quiet, False))
        return rows
    window = stats.phase("repair")
    if window is None:
        return rows
    busy = figures.busy_foreground_mb_s
    detail = (
        f"over {figures.busy_s:.1f} s with repair busy; whole repair window"
        f" {window.mb_s or 0:,.1f} MB/s ({_ops_detail(window)})"
    )
    if busy is not None and figures.busy_s < SHORT_WINDOW_S:
        detail += "; short: noisy"
    if busy is None:
        detail = f"repair was never busy once all nodes were back ({_ops_detail(window)})"
    rows.append(Row("throughput", "foreground, while repair is busy", busy, "MB/s", detail))
    rows.append(_share_row("foreground while repair is busy / quiet", busy, quiet, True))
    return rows


def _repair_rows(run: ChaosRun, figures: RepairFigures) -> list[Row]:
    if not run.with_repair:
        return [Row("repair", "repair figures", None, "", "--without-repair: not measured")]
    live_after = (
        f"; all nodes back {run.all_live_s - run.faults_stopped_s:.1f} s after"
        if run.all_live_s is not None and run.faults_stopped_s is not None
        else ""
    )
    mb = None if figures.bytes_repaired is None else figures.bytes_repaired / MB
    chaos_mb = (
        None
        if figures.bytes_repaired_during_chaos is None
        else figures.bytes_repaired_during_chaos / MB
    )
    return [
        Row(
            "repair",
            "stripes below target, peak during the faults",
            figures.peak_below_target,
            "stripes",
            f"{figures.below_target_at_stop} when the faults stopped",
        ),
        Row("repair", "repaired during the faults", chaos_mb, "MB"),
        Row(
            "repair",
            "time to zero stripes below target",
            figures.time_to_zero_s,
            "s",
            f"from the faults stopping{live_after}",
        ),
        Row(
            "repair",
            "repair rate after the faults",
            figures.mb_s,
            "MB/s",
            "" if mb is None else f"{mb:,.1f} MB repaired (bytes_repaired delta)",
        ),
        Row(
            "repair",
            "repair rate, a node replaced",
            figures.replace_mb_s,
            "MB/s",
            "not reached"
            if figures.replace_bytes is None or figures.replace_s is None
            else f"{figures.replace_bytes / MB:,.1f} MB rebuilt in {figures.replace_s:.1f} s"
            " under the load",
        ),
    ]


def build_rows(run: ChaosRun) -> list[Row]:
    """The figures of the main table: the load, the faults, repair, throughput."""
    figures = repair_figures(run)
    return [
        *_load_rows(run.stats),
        *_fault_rows(run.faults, run.stats),
        *_repair_rows(run, figures),
        *_throughput_rows(run, figures),
    ]


def _load_rows(stats: LoadStats) -> list[Row]:
    ops, errors = stats.total_ops(), stats.total_errors()
    top = ", ".join(f"{kind} ×{n}" for kind, n in errors.most_common(3))
    return [
        Row(
            "load",
            "operations done",
            float(sum(ops.values())),
            "ops",
            ", ".join(f"{kind} {ops[kind]}" for kind in OP_KINDS),
        ),
        Row("load", "errors", float(sum(errors.values())), "errors", top),
        Row(
            "load",
            "read failures of committed objects",
            float(stats.read_failures),
            "failures",
            f"GET/DELETE of a committed key that failed or found nothing;"
            f" {stats.read_failures_degraded} of objects written while a fault was held",
            0.0,
            at_least=False,
        ),
        Row(
            "load",
            "md5 mismatches",
            float(stats.md5_mismatches),
            "mismatches",
            "GET bodies and PUT answers",
            0.0,
            at_least=False,
        ),
    ]


def _fault_rows(faults: FaultSummary, stats: LoadStats) -> list[Row]:
    by_gateway = ", ".join(f"gateway{i} ×{n}" for i, n in faults.kills_by_gateway.items())
    return [
        Row(
            "faults",
            "faults injected",
            float(faults.kills + faults.pauses),
            "faults",
            f"{faults.kills} SIGKILL+restart, {faults.pauses} SIGSTOP+SIGCONT",
        ),
        Row(
            "faults",
            "most nodes unavailable at once",
            float(faults.max_unavailable),
            "nodes",
            "killed, paused or not yet heard from",
            float(faults.budget_nodes),
            at_least=False,
        ),
        Row(
            "faults",
            "faults held back for repair",
            float(faults.held_back),
            "faults",
            "until every stripe short of a shard could lose one more"
            if faults.budget == "shards"
            else "budget counted in nodes only: stripes written short get no grace",
        ),
        Row(
            "faults",
            "gateways killed and started again",
            float(faults.gateway_kills),
            "faults",
            f"one of {faults.gateways} at a time: {by_gateway or 'none'}"
            if faults.gateways > 1
            else "one gateway: none (--gateways 2 or more)",
        ),
        Row(
            "faults",
            "database restarts",
            float(faults.database_restarts),
            "faults",
            f"away {max(faults.database_away_s):.1f} s at most"
            if faults.database_away_s
            else f"{faults.database}: none",
        ),
        *_fill_rows(faults.fill, stats, faults.budget_nodes),
    ]


def room_refusals(stats: LoadStats, budget_nodes: int) -> tuple[int, int]:
    """The load's PUTs refused for room (507): (with fewer than ``budget_nodes`` nodes out,
    which a full node must not cause; with that many out, when ec:K+M has no node to spare)."""
    fewer = more = 0
    for kind, count in stats.total_errors().items():
        found = ROOM_REFUSAL.match(kind)
        if found is None:
            continue
        if int(found.group(1)) < budget_nodes:
            fewer += count
        else:
            more += count
    return fewer, more


def _fill_rows(fill: FillSummary | None, stats: LoadStats, budget_nodes: int) -> list[Row]:
    if fill is None:
        return []
    capacity_mib = fill.capacity_bytes >> 20
    fewer, more = room_refusals(stats, budget_nodes)
    refused = ", ".join(f"{k} ×{n}" for k, n in fill.refusals.items()) or "none refused"
    if fill.filled_at_s is None:
        detail = f"node{fill.node}, {capacity_mib} MiB: NOT filled ({fill.objects} fill objects)"
    else:
        low, high = fill.free_while_full or (0, 0)
        detail = (
            f"node{fill.node}, {capacity_mib} MiB, full (< {fill.margin_bytes >> 20} MiB free)"
            f" after {fill.objects} fill objects, {fill.shard_bytes >> 20} MiB each on every node"
            f" ({refused}); free while full {low >> 10}–{high >> 10} KiB"
        )
        if fill.capacity_lost_at_s is not None:
            detail += f"; NOT FULL from t={fill.capacity_lost_at_s:.0f} s: capacity lost"
    chaos = stats.phase("chaos")
    into_faults = (
        None if fill.filled_at_s is None or chaos is None else fill.filled_at_s - chaos.started_s
    )
    puts_after = (
        stats.total_ops()["PUT"] - fill.load_puts_at_fill
        if fill.load_puts_at_fill is not None
        else 0
    )
    return [
        Row("faults", "node filled up, into the faults", into_faults, "s", detail),
        Row(
            "faults",
            "load PUTs committed after it filled",
            float(puts_after),
            "PUTs",
            "on the other nodes, passed over by placement",
        ),
        Row(
            "faults",
            f"load PUTs refused for room, < {budget_nodes} nodes out",
            float(fewer),
            "PUTs",
            f"a write the full node failed; with {budget_nodes} out (no node to spare): {more}",
            0.0,
            at_least=False,
        ),
    ]


# -- tables -----------------------------------------------------------------------------------


def phases_table(stats: LoadStats) -> str:
    def rate(value: int, phase: PhaseLoad) -> str:
        return f"{value / MB / phase.wall_s:,.1f}" if phase.wall_s > 0 else ""

    def pct(cpu_s: float, phase: PhaseLoad) -> str:
        return f"{cpu_s / phase.wall_s * 100:.0f}" if phase.wall_s > 0 else ""

    headers = [
        "Phase",
        "Wall s",
        "MB/s",
        "Up MB/s",
        "Down MB/s",
        "Failed ops MB/s",
        *OP_KINDS,
        "Errors",
        "Read fail",
        "md5 bad",
        "Client CPU %",
        "GW CPU %",
    ]
    rows = [
        [
            p.name,
            f"{p.wall_s:.1f}",
            rate(p.bytes_up + p.bytes_down, p),
            rate(p.bytes_up, p),
            rate(p.bytes_down, p),
            rate(p.bytes_wasted, p),
            *(str(p.ops[k]) for k in OP_KINDS),
            str(sum(p.errors.values())),
            str(p.read_failures),
            str(p.md5_mismatches),
            pct(p.client_cpu_s, p),
            pct(p.gateway_cpu_s, p),
        ]
        for p in stats.phases
    ]
    return format_table(headers, rows)


def errors_table(stats: LoadStats) -> str:
    totals: Counter[str] = stats.total_errors()
    if not totals:
        return "(no errors)"
    names = [p.name for p in stats.phases]
    rows = [
        [kind, str(total), *(str(p.errors[kind] or "") for p in stats.phases)]
        for kind, total in totals.most_common()
    ]
    return format_table(["Error", "Total", *names], rows)


def report_text(run: ChaosRun, rows: list[Row]) -> str:
    lines = [
        f"\ndiststorage chaos benchmark ({run.profile}): {run.nodes} nodes, {run.redundancy}, "
        f"{run.clients} clients, {run.chaos_s:g} s of faults, seed {run.seed}. "
        "MB = 10^6 bytes.\n",
        rows_table(rows),
        "\nPer phase (ops count in the phase they finish in, bytes in the phase they move in;"
        " MB/s includes the bytes of failed operations, also shown on their own):\n",
        phases_table(run.stats),
        "\nErrors by kind and phase:\n",
        errors_table(run.stats),
    ]
    if run.stats.problems:
        lines.append("\nRead failures and md5 mismatches (first ones):")
        lines += [
            f"  t={p['t_s']}s {p['phase']}: {p['what']}, {p['op']} {p['key']}: {p['detail']}"
            for p in run.stats.problems
        ]
    issues = run.log_issues
    if issues.get("files"):
        lines.append(f"\nCluster log warnings/errors: {sum(issues['files'].values())} lines")
        lines += [f"  {m['count']:>5} × {m['line']}" for m in issues.get("messages", [])]
    if run.failures:
        lines.append("\n!!! FAILURES:")
        lines += [f"  - {failure}" for failure in run.failures]
    return "\n".join(lines)
