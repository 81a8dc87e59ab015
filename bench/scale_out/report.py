"""What scale_out.py found, per configuration, as tables and one JSON document."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from bench.common.cpu import CpuUse
from bench.common.load.stats import MB
from bench.common.ops import OpsResult
from bench.common.report import format_table, machine_json, size_label
from bench.scale_out.measure import TransferRecord
from bench.scale_out.mixed import MixedRun

OP_KINDS = ("PUT", "GET", "DELETE")


@dataclass(frozen=True)
class Config:
    name: str
    label: str
    gateways: int
    postgres: bool
    mixed_load: bool


@dataclass
class OpsRecord:
    result: OpsResult
    cpu: CpuUse


@dataclass
class ConfigRun:
    """What one configuration measured; filled in as it goes."""

    config: Config
    database: str = ""
    load_at_start: list[float] = field(default_factory=lambda: [*os.getloadavg()])
    ops: list[OpsRecord] = field(default_factory=list)
    transfers: list[TransferRecord] = field(default_factory=list)
    mixed: MixedRun | None = None
    log_issues: dict[str, Any] = field(default_factory=dict)

    def op(self, name: str) -> OpsRecord | None:
        return next((r for r in self.ops if r.result.op == name), None)

    def transfer(self, direction: str) -> TransferRecord | None:
        return next((r for r in self.transfers if r.transfer.direction == direction), None)


@dataclass
class Results:
    profile: dict[str, Any]
    runs: list[ConfigRun] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    load_at_start: list[float] = field(default_factory=lambda: [*os.getloadavg()])


def _load_text(load: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in load)


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def _ops_cells(record: OpsRecord | None) -> tuple[str, str, str, float | None]:
    """(ops/s, p50 / p99, CPU ms per op, ops/s as a number) of one case."""
    if record is None:
        return "n/a", "", "", None
    result, cpu = record.result, record.cpu
    rate = f"{result.ops_per_s:,.0f}" + (f" ({result.errors} errors)" if result.errors else "")
    latency = f"{_ms(result.percentile_ms(0.5))} / {_ms(result.percentile_ms(0.99))}"
    per_op = 1000 / max(1, result.ops)
    gateways = "+".join(f"{s * per_op:.2f}" for s in cpu.gateways_s)
    pg = f" / pg {cpu.postgres_s * per_op:.2f}" if cpu.postgres_s else ""
    cpu_text = f"gw {gateways} / nodes {cpu.nodes_s * per_op:.2f}{pg}"
    return rate, latency, cpu_text, result.ops_per_s


def _transfer_cells(record: TransferRecord | None) -> tuple[str, float | None]:
    if record is None:
        return "n/a", None
    transfer = record.transfer
    if not transfer.ok:
        return "FAILED", None
    return f"{transfer.mb_s:,.0f} (gateway {record.gateway + 1})", transfer.mb_s


def _ratio(values: list[float | None]) -> str:
    if len(values) != 2 or values[0] is None or values[1] is None or not values[0]:
        return ""
    return f"{values[1] / values[0]:.2f}×"


def comparison_table(runs: list[ConfigRun], transfer_bytes: int) -> str:
    headers = ["Measure", *(f"{r.config.name}: {r.config.label}" for r in runs)]
    if len(runs) == 2:
        headers.append(f"{runs[1].config.name} / {runs[0].config.name}")
    rows: list[list[str]] = []

    def add(measure: str, cells: list[str], numbers: list[float | None] | None = None) -> None:
        ratio = [_ratio(numbers or [])] if len(runs) == 2 else []
        rows.append([measure, *cells, *ratio])

    for name in ("PUT", "GET"):
        records = [r.op(name) for r in runs]
        cases = [_ops_cells(record) for record in records]
        concurrency = next((r.result.concurrency for r in records if r is not None), 0)
        add(f"4 KiB {name}, c={concurrency} (ops/s)", [c[0] for c in cases], [c[3] for c in cases])
        add("  latency p50 / p99 (ms)", [c[1] for c in cases])
        add("  CPU per op (ms)", [c[2] for c in cases])
    label = size_label(transfer_bytes)
    for direction, title in (("upload", "upload"), ("download", "download")):
        cells = [_transfer_cells(r.transfer(direction)) for r in runs]
        add(f"{title} {label}, curl (MB/s)", [c[0] for c in cells], [c[1] for c in cells])
    add("load average at start", [_load_text(r.load_at_start) for r in runs])
    return format_table(headers, rows)


def mixed_table(mixed: MixedRun) -> str:
    stats = mixed.stats
    load = mixed.load
    rows: list[list[str]] = []
    if load is not None and load.wall_s > 0:
        wall = load.wall_s
        ops = sum(load.ops.values())
        kinds = ", ".join(f"{k} {load.ops[k]:,}" for k in OP_KINDS)
        rows += [
            ["operations", f"{ops:,} in {wall:.1f} s", kinds],
            ["operations per second", f"{ops / wall:,.0f}", ""],
            [
                "MB/s (up + down)",
                f"{(load.bytes_up + load.bytes_down) / MB / wall:,.1f}",
                f"up {load.bytes_up / MB / wall:,.1f}, down {load.bytes_down / MB / wall:,.1f}",
            ],
        ]
    errors = stats.total_errors()
    rows += [
        [
            "errors (all steps)",
            str(sum(errors.values())),
            ", ".join(f"{k} ×{n}" for k, n in errors.most_common(4)) or "target 0",
        ],
        ["md5 mismatches (all steps)", str(stats.md5_mismatches), "target 0"],
        ["read failures of committed keys", str(stats.read_failures), "target 0"],
    ]
    audit = stats.phase("audit")
    if audit is not None:
        rows.append(
            [
                "audit (last gateway)",
                f"{audit.ops['GET']:,} keys read",
                f"{mixed.committed_objects:,} objects, {mixed.committed_bytes / MB:,.0f} MB"
                " committed at the end",
            ]
        )
    return format_table(["Mixed load", "Figure", "Detail"], rows)


def _cpu_row(config: str, rate: str, cpu: CpuUse) -> list[str]:
    return [
        config,
        cpu.name,
        f"{cpu.wall_s:.1f}",
        rate,
        " + ".join(f"{s:.1f}" for s in cpu.gateways_s),
        f"{cpu.nodes_s:.1f}",
        f"{cpu.postgres_s:.1f}",
        f"{cpu.client_s:.1f}",
        f"{cpu.other_s:.1f}",
    ]


def cpu_table(runs: list[ConfigRun]) -> str:
    rows: list[list[str]] = []
    for run in runs:
        name = run.config.name
        for record in run.ops:
            rate = f"{record.result.ops_per_s:,.0f} ops/s"
            rows.append(_cpu_row(name, rate, record.cpu))
        for transfer in run.transfers:
            rate = f"{transfer.transfer.mb_s:,.0f} MB/s" if transfer.transfer.ok else "failed"
            rows.append(_cpu_row(name, rate, transfer.cpu))
        if run.mixed is not None and run.mixed.cpu is not None and run.mixed.load is not None:
            rate = f"{run.mixed.load.mb_s or 0:,.0f} MB/s"
            rows.append(_cpu_row(name, rate, run.mixed.cpu))
    headers = ["Cfg", "Phase", "Wall s", "Rate", "Gateways CPU s", "Nodes", "PG", "Client"]
    return format_table([*headers, "Other"], rows)


def other_share_pct(runs: list[ConfigRun]) -> float:
    """The rest of the machine's share of its CPU capacity over every measured phase."""
    phases = [r.cpu for run in runs for r in run.ops]
    phases += [t.cpu for run in runs for t in run.transfers]
    phases += [run.mixed.cpu for run in runs if run.mixed and run.mixed.cpu]
    capacity = sum(p.wall_s for p in phases) * (os.cpu_count() or 1)
    return sum(p.other_s for p in phases) / capacity * 100 if capacity else 0.0


def report_text(results: Results, transfer_bytes: int) -> str:
    cpus = os.cpu_count()
    parts = [
        f"\ndiststorage scale-out benchmark ({results.profile['name']}): 6 nodes, ec:4+2,"
        f" loopback, {cpus} CPUs. MB = 10^6 bytes. Load average at start"
        f" {_load_text(results.load_at_start)}, at end {_load_text([*os.getloadavg()])}.\n",
        comparison_table(results.runs, transfer_bytes),
    ]
    for run in results.runs:
        if run.mixed is not None:
            parts += [
                f"\n{run.config.name}: {run.config.label}, mixed load:\n",
                mixed_table(run.mixed),
            ]
    parts += [
        "\nCPU seconds per phase (gateways each; PG = this run's backends + the server's shared"
        " processes; Other = the rest of the machine):\n",
        cpu_table(results.runs),
    ]
    other = other_share_pct(results.runs)
    if other > 15:
        parts.append(
            f"\n!!! The rest of the machine used {other:.0f}% of its CPU capacity during the"
            " measured phases: the figures above are understated. Re-run on a quiet machine."
        )
    for run in results.runs:
        issues = run.log_issues
        if issues.get("files"):
            total = sum(issues["files"].values())
            parts.append(f"\n{run.config.name}: cluster log warnings/errors: {total} lines")
            parts += [f"  {m['count']:>5} × {m['line']}" for m in issues.get("messages", [])]
    if results.failures:
        parts.append("\n!!! FAILURES (wrong data or failed operations):")
        parts += [f"  - {failure}" for failure in results.failures]
    return "\n".join(parts)


def _run_json(run: ConfigRun) -> dict[str, Any]:
    return {
        "config": run.config.name,
        "label": run.config.label,
        "gateways": run.config.gateways,
        "metadata": "postgresql" if run.config.postgres else "sqlite",
        "database": run.database,
        "load_average_at_start": [round(v, 2) for v in run.load_at_start],
        "ops": [
            {
                **r.result.to_json(),
                "spread_over_gateways": run.config.gateways,
                "cpu": r.cpu.to_json(),
            }
            for r in run.ops
        ],
        "transfers": [
            {**t.transfer.to_json(), "gateway": t.gateway + 1, "cpu": t.cpu.to_json()}
            for t in run.transfers
        ],
        "mixed_load": run.mixed.to_json() if run.mixed else None,
        "log_issues": run.log_issues,
    }


def build_document(
    results: Results, started_at: str, duration_s: float, interrupted: bool
) -> dict[str, Any]:
    return {
        "benchmark": "diststorage-scale-out",
        "profile": results.profile,
        "started_at": started_at,
        "duration_s": round(duration_s, 1),
        "ok": not results.failures and not interrupted,
        "interrupted": interrupted,
        "units": {"MB": "10^6 bytes", "MiB": "2^20 bytes"},
        "machine": machine_json(memory=False, load_at_start=results.load_at_start),
        "cluster": {"nodes": 6, "redundancy": "ec:4+2"},
        "other_cpu_load_pct": round(other_share_pct(results.runs), 1),
        "configs": [_run_json(run) for run in results.runs],
        "failures": results.failures,
    }
