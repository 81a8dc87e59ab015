"""What the metadata-scale run found, as tables and as one JSON document."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

from bench.common.report import MIB, format_table, machine_json
from bench.meta_scale.load import LoadStep, object_key
from bench.meta_scale.measure import Case, CpuShare

TARGET_RATIO = 2.0
# The cases the 2× target applies to; a prefix's first page holds fewer keys at 1,000 objects
# than at scale, so its ratio is shown for information only.
JUDGED = ("get_layout", "get_info", "list 1,000 keys")
BACKEND_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass
class CheckpointResult:
    objects: int
    load: LoadStep
    cases: list[Case]
    database_bytes: int
    settle_s: float
    # The share of the database file in the page cache before settling (SQLite only).
    resident_before_settle_pct: float | None
    measure_s: float
    cpu: CpuShare
    failures: list[str]

    def case(self, name: str, concurrency: int) -> Case | None:
        for case in self.cases:
            if case.name == name and case.concurrency == concurrency:
                return case
        return None


@dataclass
class BackendRun:
    backend: str
    load_concurrency: int
    checkpoints: list[CheckpointResult] = field(default_factory=list)
    plans: dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        return [f for c in self.checkpoints for f in c.failures]

    @property
    def load_seconds(self) -> float:
        return sum(c.load.seconds for c in self.checkpoints)

    @property
    def loaded(self) -> int:
        return self.checkpoints[-1].objects if self.checkpoints else 0


@dataclass(frozen=True)
class Ratio:
    backend: str
    case: str
    concurrency: int
    first_objects: int
    last_objects: int
    first_p99_ms: float
    last_p99_ms: float
    judged: bool

    @property
    def value(self) -> float:
        if self.first_objects == self.last_objects or self.first_p99_ms <= 0:
            return math.nan
        return self.last_p99_ms / self.first_p99_ms

    @property
    def met(self) -> bool | None:
        if not self.judged or self.first_objects == self.last_objects:
            return None
        return self.value <= TARGET_RATIO

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "case": self.case,
            "concurrency": self.concurrency,
            "p99_ms": {f"{self.first_objects}": round(self.first_p99_ms, 3)}
            | {f"{self.last_objects}": round(self.last_p99_ms, 3)},
            "ratio": None if math.isnan(self.value) else round(self.value, 2),
            "target": f"≤ {TARGET_RATIO:g}×" if self.judged else None,
            "met": self.met,
        }


def ratios(run: BackendRun) -> list[Ratio]:
    """p99 at the last checkpoint over p99 at the first (1,000 objects), case by case."""
    if not run.checkpoints:
        return []
    first, last = run.checkpoints[0], run.checkpoints[-1]
    found: list[Ratio] = []
    for case in first.cases:
        at_last = last.case(case.name, case.concurrency)
        if at_last is None:
            continue
        found.append(
            Ratio(
                run.backend,
                case.name,
                case.concurrency,
                first.objects,
                last.objects,
                case.percentile_ms(0.99),
                at_last.percentile_ms(0.99),
                case.name in JUDGED,
            )
        )
    return found


def _case_cell(case: Case | None) -> str:
    if case is None or not case.latencies_ms:
        return "n/a"
    cell = f"{case.percentile_ms(0.5):.2f} / {case.percentile_ms(0.99):.2f}"
    if case.keys_listed and case.keys_per_page < 999.5:
        cell += f" ({case.keys_per_page:.0f} keys)"
    return cell


def _ratio_cell(ratio: Ratio | None) -> str:
    return "" if ratio is None or math.isnan(ratio.value) else f"{ratio.value:.2f}×"


def backend_table(run: BackendRun) -> str:
    points = run.checkpoints
    headers = ["p50 / p99 ms", *(f"{p.objects:,}" for p in points), "p99 ratio", "≤ 2×"]
    by_case = {(r.case, r.concurrency): r for r in ratios(run)}
    rows: list[list[str]] = []
    for case in points[0].cases if points else []:
        ratio = by_case.get((case.name, case.concurrency))
        met = {None: "(info)" if ratio and not ratio.judged else "", True: "met", False: "NOT MET"}
        rows.append(
            [
                f"{case.name} c={case.concurrency}",
                *(_case_cell(p.case(case.name, case.concurrency)) for p in points),
                _ratio_cell(ratio),
                met[ratio.met] if ratio else "",
            ]
        )
    rows.append(["load, objects/s", *(f"{p.load.objects_per_s:,.0f}" for p in points), "", ""])
    rows.append(["database, MiB", *(f"{p.database_bytes / MIB:,.0f}" for p in points), "", ""])
    if any(p.resident_before_settle_pct is not None for p in points):
        rows.append(
            [
                "file in page cache before settling, %",
                *(f"{p.resident_before_settle_pct or 0:.0f}" for p in points),
                "",
                "",
            ]
        )
    rows.append(
        [
            "CPU % bench / pg / others",
            *(
                f"{p.cpu.bench_pct:.0f} / {p.cpu.postgres_pct:.0f} / {p.cpu.others_pct:.0f}"
                for p in points
            ),
            "",
            "",
        ]
    )
    return format_table(headers, rows)


def report_text(runs: list[BackendRun], profile_name: str) -> str:
    lines = [
        f"\ndiststorage metadata at scale ({profile_name}), {os.cpu_count()} CPUs. Latencies in"
        " ms; a listing page asks for 1,000 keys (a cell says how many came back when fewer)."
    ]
    for run in runs:
        title = BACKEND_TITLES[run.backend]
        rate = run.loaded / run.load_seconds if run.load_seconds else math.nan
        lines.append(
            f"\n{title}: {run.loaded:,} objects loaded through begin_upload + commit_upload in"
            f" {run.load_seconds:,.0f} s ({rate:,.0f} objects/s overall,"
            f" {run.load_concurrency} uploads in flight)\n"
        )
        lines.append(backend_table(run) if run.checkpoints else "(no checkpoint reached)")
    judged = [r for run in runs for r in ratios(run) if r.judged]
    if judged:
        lines.append(f"\nTarget: p99 at the largest checkpoint ≤ {TARGET_RATIO:g}× p99 at 1,000\n")
        lines.append(
            format_table(
                ["Backend", "Case", "p99 at 1,000", "p99 at N", "N", "Ratio", "Met"],
                [
                    [
                        BACKEND_TITLES[r.backend],
                        f"{r.case} c={r.concurrency}",
                        f"{r.first_p99_ms:.2f} ms",
                        f"{r.last_p99_ms:.2f} ms",
                        f"{r.last_objects:,}",
                        _ratio_cell(r) or "n/a",
                        {None: "n/a", True: "met", False: "NOT MET"}[r.met],
                    ]
                    for r in judged
                ],
            )
        )
    failures = [f for run in runs for f in run.failures]
    if failures:
        lines.append("\n!!! FAILURES (wrong answers from the store):")
        lines += [f"  - {f}" for f in failures]
    return "\n".join(lines)


def _run_json(run: BackendRun) -> dict[str, Any]:
    return {
        "backend": run.backend,
        "load_concurrency": run.load_concurrency,
        "objects": run.loaded,
        "load_s": round(run.load_seconds, 1),
        "load_objects_per_s": round(run.loaded / run.load_seconds, 1) if run.load_seconds else None,
        "checkpoints": [
            {
                "objects": p.objects,
                "load": {
                    "from_objects": p.load.start,
                    "seconds": round(p.load.seconds, 1),
                    "objects_per_s": round(p.load.objects_per_s, 1),
                },
                "database_mib": round(p.database_bytes / MIB, 1),
                "settle_s": round(p.settle_s, 1),
                "resident_before_settle_pct": None
                if p.resident_before_settle_pct is None
                else round(p.resident_before_settle_pct, 1),
                "measure_s": round(p.measure_s, 1),
                "cpu_while_measuring": p.cpu.to_json(),
                "cases": [c.to_json() for c in p.cases],
            }
            for p in run.checkpoints
        ],
        "p99_ratios": [r.to_json() for r in ratios(run)],
        "query_plans_at_last_checkpoint": run.plans,
        "failures": run.failures,
    }


def build_document(
    runs: list[BackendRun], settings: dict[str, Any], duration_s: float, interrupted: bool
) -> dict[str, Any]:
    judged = [r for run in runs for r in ratios(run) if r.met is not None]
    return {
        "benchmark": "diststorage-meta-scale",
        **settings,
        "duration_s": round(duration_s, 1),
        "ok": not interrupted and not any(run.failures for run in runs),
        "interrupted": interrupted,
        "all_within_target": all(r.met for r in judged) if judged else None,
        "object_shape": {
            "policy": "ec:4+2, one segment",
            "chunks": 6,
            "block_crcs_per_chunk": 1,
            "key_examples": [object_key(n) for n in range(4)],
        },
        "machine": machine_json(memory=True, load_at_start=None),
        "backends": [_run_json(run) for run in runs],
    }
