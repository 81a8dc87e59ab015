"""The chaos run as one JSON document (printed after the table, and written by --json-out)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from bench.chaos.repair import RepairSample
from bench.chaos.report import ChaosRun, FaultSummary, repair_figures
from bench.common.report import Row, machine_json


def _compact_samples(samples: list[RepairSample], keep: int = 200) -> list[str]:
    """One line per change of repair state or stripes below target; if there are more than
    ``keep``, an even selection of them, and always the last."""
    lines: list[str] = []
    last: tuple[str, int] | None = None
    for sample in samples:
        status = sample.status
        if status is None:
            lines.append(f"t={sample.t_s:.1f}s error: {sample.error}")
            continue
        now = (status.state, status.stripes_below_target)
        if now != last:
            lines.append(
                f"t={sample.t_s:.1f}s {status.state} below_target={status.stripes_below_target}"
                f" repaired={status.bytes_repaired} rate={status.rate_bytes_per_s:.0f}B/s"
                f" eta={status.eta_s}"
            )
            last = now
    if len(lines) <= keep:
        return lines
    step = -(-len(lines) // keep)
    return [*lines[:-1:step], lines[-1]]


def build_document(
    run: ChaosRun, rows: list[Row], started_at: str, duration_s: float, interrupted: bool
) -> dict[str, Any]:
    stats = run.stats
    return {
        "benchmark": "diststorage-chaos",
        "profile": run.profile,
        "started_at": started_at,
        "duration_s": round(duration_s, 1),
        "ok": not run.failures and not interrupted,
        "interrupted": interrupted,
        "seed": run.seed,
        "clients": run.clients,
        "chaos_s": run.chaos_s,
        "units": {"MB": "10^6 bytes"},
        "machine": machine_json(memory=False, load_at_start=run.load_at_start),
        "cluster": {
            "nodes": run.nodes,
            "redundancy": run.redundancy,
            "gateway_args": run.gateway_args,
            "with_repair": run.with_repair,
        },
        "figures": [row.to_json() for row in rows],
        "operations": dict(sorted(stats.total_ops().items())),
        "errors": dict(stats.total_errors().most_common()),
        "read_failures": stats.read_failures,
        "read_failures_of_objects_written_under_faults": stats.read_failures_degraded,
        "md5_mismatches": stats.md5_mismatches,
        "problems": stats.problems,
        "committed_at_end": {"objects": run.committed_objects, "bytes": run.committed_bytes},
        "phases": [p.to_json() for p in stats.phases],
        "faults": _faults_json(run.faults),
        "repair": _repair_json(run),
        "failures": run.failures,
        "log_issues": run.log_issues,
    }


def _faults_json(faults: FaultSummary) -> dict[str, Any]:
    return {
        "budget_nodes": faults.budget_nodes,
        "budget": faults.budget,
        "held_back_for_repair": faults.held_back,
        "kills": faults.kills,
        "pauses": faults.pauses,
        "max_unavailable": faults.max_unavailable,
        "nodes_not_back_in_time": faults.late_nodes,
        "events": faults.events,
        "gateways": faults.gateways,
        "gateway_kills": faults.gateway_kills,
        "gateway_kills_by_index": {str(i): n for i, n in faults.kills_by_gateway.items()},
        "gateways_not_back_in_time": faults.late_gateways,
        "database": faults.database,
        "database_restarts": faults.database_restarts,
        "database_away_s": faults.database_away_s,
        "fill": None if faults.fill is None else asdict(faults.fill),
    }


def _repair_json(run: ChaosRun) -> dict[str, Any]:
    figures = repair_figures(run)
    return {
        "faults_stopped_s": run.faults_stopped_s,
        "all_nodes_live_s": run.all_live_s,
        "repaired_s": run.repaired_s,
        "time_to_zero_s": figures.time_to_zero_s,
        "bytes_repaired_after_faults": figures.bytes_repaired,
        "repair_mb_s": None if figures.mb_s is None else round(figures.mb_s, 2),
        "peak_below_target_during_faults": figures.peak_below_target,
        "below_target_when_faults_stopped": figures.below_target_at_stop,
        "bytes_repaired_during_faults": figures.bytes_repaired_during_chaos,
        "busy_s_after_nodes_back": round(figures.busy_s, 2),
        "foreground_mb_s_while_busy": (
            None if figures.busy_foreground_mb_s is None else round(figures.busy_foreground_mb_s, 2)
        ),
        "timeline": _compact_samples(run.repair_samples),
    }
