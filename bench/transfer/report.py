"""The transfer benchmark's figures: the table of rows against targets, the per-phase table,
the JSON document."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import subprocess
from typing import Any

from bench.common.report import (
    MIB,
    Row,
    format_table,
    machine_json,
    rows_table,
    size_label,
)
from bench.common.sampler import PhaseStats
from bench.transfer.ceilings import Ceilings, upload_bound
from bench.transfer.disk import DiskFloor
from bench.transfer.results import (
    BUSY_MACHINE_PCT,
    NODES,
    REDUNDANCY,
    TARGET_DOWNLOAD_MB_S,
    TARGET_GATEWAY_RSS_MIB,
    TARGET_GET_OPS_C16,
    TARGET_PUT_OPS_C16,
    TARGET_UPLOAD_FLOOR_PCT,
    TARGET_UPLOAD_MB_S,
    Results,
    TransferRecord,
)


def _median_rate(records: list[TransferRecord]) -> float | None:
    rates = [r.transfer.mb_s for r in records if r.transfer.ok]
    return statistics.median(rates) if rates else None


QUICK_NOTE = " [quick run; target is for 1 GiB]"


def build_rows(results: Results) -> list[Row]:
    """The figures of the main table, in order: each size's transfers, the 4 KiB cases, peak
    memory, and the streamed upload."""
    rows: list[Row] = ceiling_rows(results.ceilings)
    for size in results.profile.transfer_sizes:
        rows += _transfer_rows(results, size)
    rows += _ops_rows(results)
    rows += _memory_rows(results)
    rows += _stream_rows(results)
    return rows


def _transfer_rows(results: Results, size: int) -> list[Row]:
    """Upload, disk floor, upload against the floor, and download of one size (curl)."""
    label = size_label(size)
    is_target = size == max(results.profile.transfer_sizes)
    note = QUICK_NOTE if results.profile.name == "quick" and is_target else ""
    runs = [
        r
        for r in results.transfers
        if r.transfer.size == size and r.transfer.method != "aiohttp stream"
    ]
    ups = [r for r in runs if r.transfer.direction == "upload"]
    downs = [r for r in runs if r.transfer.direction == "download"]
    how = f"median of {len(ups)}, " if len(ups) > 1 else ""
    upload_target = TARGET_UPLOAD_MB_S if is_target else None
    download_target = TARGET_DOWNLOAD_MB_S if is_target else None
    floors = results.floors.get(size, [])
    return [
        _rate_row(f"upload {label} (curl){note}", ups, how, upload_target),
        *_floor_rows(floors, ups, label, is_target),
        *_upload_share_rows(floors, ups, label, results.ceilings),
        *_cpu_rows(f"upload {label}", ups),
        _rate_row(f"download {label} (curl){note}", downs, how, download_target),
        *_download_share_rows(downs, label, results.ceilings),
        *_cpu_rows(f"download {label}", downs),
    ]


def ceiling_rows(ceilings: Ceilings | None) -> list[Row]:
    """Each ceiling's rate, with the CPU per GiB of its sending and receiving process."""
    if ceilings is None:
        return []
    rows = []
    for ceiling in ceilings.found.values():
        sender = ceiling.per_gib(ceiling.sender_cpu_s)
        receiver = ceiling.per_gib(ceiling.receiver_cpu_s)
        rows.append(
            Row(
                "ceiling",
                f"{ceiling.label}, {size_label(ceiling.size)}",
                ceiling.mb_s if ceiling.ok else None,
                "MB/s",
                f"CPU s/GiB: sender ({ceiling.sender}) {sender:.2f}, "
                f"receiver ({ceiling.receiver}) {receiver:.2f}"
                if ceiling.ok
                else ceiling.detail[:120],
            )
        )
    return rows


def _upload_share_rows(
    floors: list[DiskFloor], ups: list[TransferRecord], label: str, ceilings: Ceilings | None
) -> list[Row]:
    """Each upload against the slower of its disk floor and HTTP in (median of the runs)."""
    shares: list[float] = []
    bound_name = ""
    for record in ups:
        floor = floors[record.repeat].object_mb_s if record.repeat < len(floors) else None
        bound = upload_bound(floor, ceilings)
        if record.transfer.ok and bound is not None and bound[1] > 0:
            shares.append(record.transfer.mb_s / bound[1] * 100)
            bound_name = f"bound: {bound[0]} {bound[1]:,.0f} MB/s"
    if not shares:
        return []
    value = statistics.median(shares)
    return [Row("transfer", f"upload {label} / its ceiling", value, "%", bound_name)]


def _download_share_rows(
    downs: list[TransferRecord], label: str, ceilings: Ceilings | None
) -> list[Row]:
    """The download against the slower of gRPC pull (mTLS, as the cluster runs) and HTTP out."""
    bound = ceilings.download_bound() if ceilings is not None else None
    rate = _median_rate(downs)
    if bound is None or rate is None or not bound.mb_s:
        return []
    detail = f"bound: {bound.label} {bound.mb_s:,.0f} MB/s"
    share = rate / bound.mb_s * 100
    return [Row("transfer", f"download {label} / its ceiling", share, "%", detail)]


def _cpu_rows(what: str, records: list[TransferRecord]) -> list[Row]:
    """CPU seconds per GiB of the first run: the cluster's as the figure, each group's beside."""
    if not records or not records[0].transfer.ok:
        return []
    record = records[0]
    per_gib = record.phase.cpu_per_gib(record.transfer.size)
    detail = ", ".join(f"{group} {per_gib[group]:.2f}" for group in GROUPS)
    return [Row("cpu", f"CPU s/GiB, {what} (gateway + nodes)", per_gib["cluster"], "s", detail)]


GROUPS = ("gateway", "nodes", "client", "other")


def _rate_row(measure: str, records: list[TransferRecord], how: str, target: float | None) -> Row:
    """The median rate of ``records``, with the CPU of the first one's phase."""
    phase = records[0].phase if records else None
    cpu = f"CPU s gw {phase.gateway_cpu_s:.1f} / nodes {phase.nodes_cpu_s:.1f}" if phase else ""
    return Row("transfer", measure, _median_rate(records), "MB/s", f"{how}{cpu}", target)


def _floor_rows(
    floors: list[DiskFloor], ups: list[TransferRecord], label: str, is_target: bool
) -> list[Row]:
    """The disk floor of one size, and each upload against the floor measured just before it."""
    if not floors:
        return []
    floor_rate = statistics.median(f.object_mb_s for f in floors)
    raw_rate = statistics.median(f.raw_mb_s for f in floors)
    many = f"median of {len(floors)}, " if len(floors) > 1 else ""
    shares = [
        r.transfer.mb_s / floors[r.repeat].object_mb_s * 100
        for r in ups
        if r.transfer.ok and r.repeat < len(floors) and floors[r.repeat].object_mb_s
    ]
    return [
        Row(
            "transfer",
            f"disk floor {label} ({size_label(floors[0].written_bytes)} fsync'd)",
            floor_rate,
            "MB/s",
            f"{many}object bytes/s; raw {raw_rate:,.0f} MB/s",
        ),
        Row(
            "transfer",
            f"upload {label} / disk floor",
            statistics.median(shares) if shares else None,
            "%",
            "median of per-run ratios" if len(shares) > 1 else "",
            TARGET_UPLOAD_FLOOR_PCT if is_target else None,
        ),
    ]


def _ops_rows(results: Results) -> list[Row]:
    rows: list[Row] = []
    for record in results.ops:
        result = record.result
        target = None
        if result.concurrency == 16:
            target = TARGET_PUT_OPS_C16 if result.op == "PUT" else TARGET_GET_OPS_C16
        client_pct = record.phase.client_cpu_s / record.phase.wall_s * 100
        gw_ms = record.phase.gateway_cpu_s * 1000 / max(1, result.ops)
        rows.append(
            Row(
                "4 KiB ops",
                f"{result.op} c={result.concurrency}",
                result.ops_per_s,
                "ops/s",
                f"p50 {result.percentile_ms(0.5):.2f} ms, p99 {result.percentile_ms(0.99):.2f} ms,"
                f" gw CPU {gw_ms:.1f} ms/op, client CPU {client_pct:.0f}%",
                target,
            )
        )
    return rows


def _memory_rows(results: Results) -> list[Row]:
    rows: list[Row] = []
    for case in results.rss:
        label = f"{case.label} {size_label(case.size)} ({case.method})"
        phase = case.phase
        how = "VmHWM, reset before" if phase.peak_source == "VmHWM" else f"{phase.samples} samples"
        rows.append(
            Row(
                "memory",
                f"gateway peak RSS, {label}",
                phase.gateway_peak_rss / MIB,
                "MiB",
                how,
                TARGET_GATEWAY_RSS_MIB,
                at_least=False,
            )
        )
        rows.append(
            Row(
                "memory",
                f"node peak RSS (max of {NODES}), {label}",
                phase.node_max_peak_rss / MIB,
                "MiB",
                how,
            )
        )
    return rows


def _stream_rows(results: Results) -> list[Row]:
    streamed = [r for r in results.transfers if r.transfer.method == "aiohttp stream"]
    return [
        Row(
            "transfer",
            f"upload {size_label(stream.transfer.size)} (aiohttp stream)",
            stream.transfer.mb_s if stream.transfer.ok else None,
            "MB/s",
            f"CPU s gw {stream.phase.gateway_cpu_s:.1f} / nodes {stream.phase.nodes_cpu_s:.1f}",
        )
        for stream in streamed
    ]


def phases_table(results: Results) -> str:
    phases: list[tuple[str, PhaseStats]] = []
    if results.idle is not None:
        phases.append(("", results.idle))
    phases += [(f"{r.result.ops_per_s:,.0f} ops/s", r.phase) for r in results.ops]
    phases += [
        (f"{r.transfer.mb_s:,.0f} MB/s" if r.transfer.ok else "failed", r.phase)
        for r in results.transfers
    ]
    return format_table(
        [
            "Phase",
            "Wall s",
            "Rate",
            "GW CPU s",
            "Nodes CPU s",
            "Client CPU s",
            "Other CPU s",
            "GW peak MiB",
            "Node max MiB",
            "Others using CPU (s)",
        ],
        [
            [
                p.name,
                f"{p.wall_s:.2f}",
                rate,
                f"{p.gateway_cpu_s:.2f}",
                f"{p.nodes_cpu_s:.2f}",
                f"{p.client_cpu_s:.2f}",
                f"{p.other_cpu_s:.2f}",
                f"{p.gateway_peak_rss / MIB:.0f}",
                f"{p.node_max_peak_rss / MIB:.0f}",
                ", ".join(f"{name} {cpu:.1f}" for name, cpu in p.other_top),
            ]
            for rate, p in phases
        ],
    )


def _curl_version() -> str:
    try:
        out = subprocess.run(["curl", "--version"], capture_output=True, text=True, check=False)
    except OSError:
        return "unavailable"
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def build_document(
    results: Results, rows: list[Row], started: dt.datetime, duration_s: float, interrupted: bool
) -> dict[str, Any]:
    return {
        "benchmark": "diststorage",
        "profile": results.profile.name,
        "started_at": started.isoformat(timespec="seconds"),
        "duration_s": round(duration_s, 1),
        "ok": not results.failures and not interrupted,
        "interrupted": interrupted,
        "units": {"MB": "10^6 bytes", "MiB": "2^20 bytes"},
        "machine": machine_json(
            memory=True, load_at_start=results.load_at_start, curl=_curl_version()
        ),
        "cluster": {"nodes": NODES, "redundancy": REDUNDANCY},
        "figures": [row.to_json() for row in rows],
        "transfers": [
            {**r.transfer.to_json(), "repeat": r.repeat, "phase": r.phase.to_json()}
            for r in results.transfers
        ],
        "disk_floor": [
            {"size": size_label(size), "repeat": repeat, **floor.to_json()}
            for size, floors in results.floors.items()
            for repeat, floor in enumerate(floors)
        ],
        "ops": [{**r.result.to_json(), "phase": r.phase.to_json()} for r in results.ops],
        "rss": [
            {
                "case": c.label,
                "size_bytes": c.size,
                "method": c.method,
                "gateway_peak_rss_mib": round(c.phase.gateway_peak_rss / MIB, 1),
                "node_max_peak_rss_mib": round(c.phase.node_max_peak_rss / MIB, 1),
                "peak_source": c.phase.peak_source,
            }
            for c in results.rss
        ],
        "ceilings": results.ceilings.to_json() if results.ceilings else None,
        "idle": results.idle.to_json() if results.idle else None,
        "other_cpu_load_pct": round(other_load_pct(results), 1),
        "failures": results.failures,
        "log_issues": results.log_issues,
    }


def other_load_pct(results: Results) -> float:
    """Share of the machine's CPU capacity, over the measured phases, used by anything other
    than the cluster and this client (other programs, kernel threads)."""
    phases = [r.phase for r in results.ops] + [r.phase for r in results.transfers]
    capacity = sum(p.wall_s for p in phases) * (os.cpu_count() or 1)
    return sum(p.other_cpu_s for p in phases) / capacity * 100 if capacity else 0.0


def print_report(results: Results, rows: list[Row], document: dict[str, Any]) -> None:
    profile = results.profile
    print(
        f"\ndiststorage benchmark ({profile.name}): {NODES} nodes, {REDUNDANCY}, loopback, "
        f"{os.cpu_count()} CPUs. MB = 10^6 bytes, MiB = 2^20 bytes.\n"
    )
    print(rows_table(rows))
    print(
        "\nPer phase (CPU seconds of each side; Other = rest of the machine incl. kernel"
        " threads; peaks: each process's VmHWM, reset as the phase starts):\n"
    )
    print(phases_table(results))
    other = other_load_pct(results)
    if other > BUSY_MACHINE_PCT:
        print(
            f"\n!!! The rest of the machine used {other:.0f}% of its CPU capacity during the"
            " measured phases (other programs, kernel threads); the figures above are likely"
            " understated. Re-run on a quiet machine."
        )
    issues = results.log_issues
    if issues.get("files"):
        total = sum(issues["files"].values())
        print(f"\nCluster log warnings/errors: {total} lines {issues['files']}")
        for message in issues.get("messages", []):
            print(f"  {message['count']:>5} × {message['line']}")
    if results.failures:
        print("\n!!! FAILURES (wrong data or failed operations):")
        for failure in results.failures:
            print(f"  - {failure}")
    print("\nJSON:")
    print(json.dumps(document, indent=2))
