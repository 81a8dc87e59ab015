"""The S3 benchmark's figures: the table of rows against targets, the per-phase table, the
JSON document."""

from __future__ import annotations

import datetime as dt
import json
import statistics
from typing import Any

from bench.common.report import MIB, Row, format_table, machine_json, rows_table, size_label
from bench.common.sampler import PhaseStats
from bench.s3.profile import (
    NODES,
    REDUNDANCY,
    TARGET_MULTIPART_RSS_MIB,
    TARGET_OPS_PCT,
    TARGET_TRANSFER_PCT,
    OpsRun,
    Results,
)

S3_CLIENTS = ("boto3", "aws-cli")


def _median_mb_s(results: Results, client: str, direction: str) -> float | None:
    rates = [
        t.mb_s
        for t in results.transfers
        if (t.client, t.direction, t.ok) == (client, direction, True)
    ]
    return statistics.median(rates) if rates else None


def _pct(part: float | None, whole: float | None) -> float | None:
    if part is None or not whole:
        return None
    return part / whole * 100


def transfer_rows(results: Results) -> list[Row]:
    section = f"{size_label(results.profile.transfer_bytes)} transfers"
    clients = sorted({t.client for t in results.transfers}, key=["native", *S3_CLIENTS].index)
    rows: list[Row] = []
    for direction in ("upload", "download"):
        native = _median_mb_s(results, "native", direction)
        for client in clients:
            runs = [t for t in results.transfers if (t.client, t.direction) == (client, direction)]
            detail = "runs: " + ", ".join(f"{t.mb_s:,.0f}" for t in runs)
            rows.append(
                Row(
                    section,
                    f"{direction}, {client}",
                    _median_mb_s(results, client, direction),
                    "MB/s",
                    detail,
                )
            )
        for client in clients:
            if client != "native":
                share = _pct(_median_mb_s(results, client, direction), native)
                rows.append(
                    Row(
                        section,
                        f"{direction}, {client} / native",
                        share,
                        "%",
                        "medians",
                        TARGET_TRANSFER_PCT,
                    )
                )
    return rows


def _ops_rate(runs: list[OpsRun]) -> float | None:
    seconds = sum(r.seconds for r in runs)
    return sum(r.ops for r in runs) / seconds if seconds else None


def _ops_detail(runs: list[OpsRun]) -> str:
    """Latencies (median of the rounds' p50, worst p99) and the gateway's CPU per operation."""
    if not runs:
        return "no run"
    ops = sum(r.ops for r in runs)
    if not ops:
        return "no operation succeeded"
    cpu_ms = sum(r.phase.gateway_cpu_s for r in runs) * 1000 / ops
    p50 = statistics.median(r.p50_ms for r in runs)
    p99 = max(r.p99_ms for r in runs)
    return f"p50 {p50:.2f} ms, p99 ≤ {p99:.2f} ms, gateway {cpu_ms:.2f} CPU-ms/op"


def ops_rows(results: Results) -> list[Row]:
    section = f"4 KiB, concurrency {results.profile.ops_concurrency}"
    rows: list[Row] = []
    for op in ("PUT", "GET"):
        rates: dict[str, float | None] = {}
        for front in ("native", "S3"):
            runs = [r for r in results.ops if (r.op, r.front) == (op, front)]
            rates[front] = _ops_rate(runs)
            rows.append(Row(section, f"{op} via {front}", rates[front], "ops/s", _ops_detail(runs)))
        rows.append(
            Row(
                section,
                f"{op}, S3 / native",
                _pct(rates["S3"], rates["native"]),
                "%",
                "all rounds",
                TARGET_OPS_PCT,
            )
        )
    return rows


def memory_rows(results: Results) -> list[Row]:
    case = results.memory
    if case is None:
        return []
    parts = f"{case.in_flight} × {size_label(case.part_bytes)} in flight"
    section = f"multipart {size_label(case.size)}, {parts}"
    rate = case.size / case.seconds / 1e6 if case.ok and case.seconds > 0 else None
    return [
        Row(section, "gateway RSS before", case.rss_before / MIB, "MiB"),
        Row(
            section,
            "gateway peak RSS (sampled every 50 ms)",
            case.sampled_peak / MIB,
            "MiB",
            "",
            TARGET_MULTIPART_RSS_MIB,
            at_least=False,
        ),
        Row(
            section,
            "gateway RSS growth",
            (case.sampled_peak - case.rss_before) / MIB,
            "MiB",
            "sampled peak less RSS before",
        ),
        Row(section, "gateway VmHWM after", case.hwm_after / MIB, "MiB", "peak since start"),
        Row(section, "upload (boto3)", rate, "MB/s"),
    ]


def signing_rows(results: Results) -> list[Row]:
    section = "signature check, in process"
    return [
        Row(section, case.name, case.us_per_request, "µs/request", f"{case.requests:,} requests")
        for case in results.signing
    ]


def build_rows(results: Results) -> list[Row]:
    return [
        *memory_rows(results),
        *transfer_rows(results),
        *([] if results.profile.transfers_only else ops_rows(results)),
        *signing_rows(results),
    ]


def _phases(results: Results) -> list[PhaseStats]:
    phases = [results.idle] if results.idle is not None else []
    if results.memory is not None:
        phases.append(results.memory.phase)
    phases += [t.phase for t in results.transfers]
    phases += [r.phase for r in results.ops]
    return phases


def phase_table(results: Results) -> str:
    rows = [
        [
            p.name,
            f"{p.wall_s:.1f}",
            f"{p.gateway_peak_rss / MIB:.0f}",
            f"{p.node_max_peak_rss / MIB:.0f}",
            f"{p.gateway_cpu_s:.1f}",
            f"{p.nodes_cpu_s:.1f}",
            f"{p.client_cpu_s:.1f}",
            f"{p.other_cpu_s:.1f}",
        ]
        for p in _phases(results)
    ]
    headers = [
        "Phase",
        "Wall s",
        "GW RSS MiB",
        "Node RSS MiB",
        "GW CPU s",
        "Nodes CPU s",
        "Client CPU s",
        "Other CPU s",
    ]
    return format_table(headers, rows)


def build_document(
    results: Results, rows: list[Row], started: dt.datetime, wall_s: float, interrupted: bool
) -> dict[str, Any]:
    return {
        "benchmark": "s3",
        "profile": results.profile.name,
        "started_at": started.isoformat(),
        "wall_s": round(wall_s, 1),
        "interrupted": interrupted,
        "cluster": {"nodes": NODES, "redundancy": REDUNDANCY},
        "machine": machine_json(memory=True, load_at_start=None),
        "rows": [row.to_json() for row in rows],
        "transfers": [t.to_json() for t in results.transfers],
        "ops": [r.to_json() for r in results.ops],
        "phases": [p.to_json() for p in _phases(results)],
        "failures": results.failures,
        "log_issues": results.log_issues,
    }


def print_report(results: Results, rows: list[Row], document: dict[str, Any]) -> None:
    print(rows_table(rows))
    print()
    print(phase_table(results))
    if results.failures:
        print("\nFAILURES:")
        for failure in results.failures:
            print(f"  - {failure}")
    messages = results.log_issues.get("messages", [])
    if messages:
        print("\nMost frequent warnings and errors in the cluster's logs:")
        for entry in messages:
            print(f"  {entry['count']:>5} × {entry['line']}")
    print()
    print(json.dumps(document, indent=2))
