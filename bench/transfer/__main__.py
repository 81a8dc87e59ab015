"""Benchmark of diststorage: a real 6-node ec:4+2 cluster on loopback, in a temporary folder.

    uv run python bench/run.py [--quick] [--json-out FILE]

Measures large-object upload and download rates (curl), 4 KiB PUT/GET rates and latencies
(aiohttp), peak RSS of the gateway and nodes during big uploads, and the disk floor the uploads
are compared with. Prints a table and a JSON document; exits non-zero if any data came back
wrong or any operation failed, never because a target was missed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import psutil
import uvloop

from bench.common.curl import (
    Transfer,
    check_download,
    curl_download,
    curl_upload,
    pattern_md5,
    stream_upload,
    write_random_file,
)
from bench.common.ops import OBJECT_BYTES, Budget, OpsResult, get_case, put_case
from bench.common.report import (
    GIB,
    MIB,
    Row,
    format_table,
    has_room,
    rows_table,
    scan_logs,
    size_label,
)
from bench.common.sampler import ClusterSampler, PhaseStats
from bench.transfer.disk import DiskFloor, measure_disk_floor
from diststorage.testing.cluster import running_cluster

NODES = 6
REDUNDANCY = "ec:4+2"
CONCURRENCIES = (1, 16)
SETTLE_S = 0.5
BUSY_MACHINE_PCT = 15.0

TARGET_UPLOAD_MB_S = 250.0
TARGET_UPLOAD_FLOOR_PCT = 70.0
TARGET_DOWNLOAD_MB_S = 500.0
TARGET_GATEWAY_RSS_MIB = 150.0
TARGET_PUT_OPS_C16 = 1000.0
TARGET_GET_OPS_C16 = 3000.0


@dataclass(frozen=True)
class Profile:
    name: str
    transfer_sizes: tuple[int, ...]
    small_repeats: int
    stream_size: int
    ops_seconds: float
    ops_warmup_s: float
    max_ops: int = 1_000_000

    def repeats(self, size: int) -> int:
        return self.small_repeats if size < 256 * MIB else 1


FULL = Profile("full", (64 * MIB, 1 * GIB), 3, 4 * GIB, 10.0, 1.0)
QUICK = Profile("quick", (64 * MIB, 256 * MIB), 3, 1 * GIB, 3.0, 0.5)


@dataclass
class TransferRecord:
    transfer: Transfer
    phase: PhaseStats
    repeat: int


@dataclass
class OpsRecord:
    result: OpsResult
    phase: PhaseStats


@dataclass
class RssCase:
    label: str
    size: int
    method: str
    phase: PhaseStats


@dataclass
class Results:
    profile: Profile
    transfers: list[TransferRecord] = field(default_factory=list)
    floors: dict[int, list[DiskFloor]] = field(default_factory=dict)
    ops: list[OpsRecord] = field(default_factory=list)
    rss: list[RssCase] = field(default_factory=list)
    idle: PhaseStats | None = None
    failures: list[str] = field(default_factory=list)
    log_issues: dict[str, Any] = field(default_factory=dict)
    load_at_start: list[float] = field(default_factory=lambda: [*os.getloadavg()])

    def fail(self, message: str) -> None:
        self.failures.append(message)
        say(f"!!! FAILURE: {message}")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _raise_interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _ignore_signals() -> None:
    """While the cluster stops, a second Ctrl-C or SIGTERM must not cut the cleanup short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _settle() -> None:
    os.sync()
    time.sleep(SETTLE_S)


# -- phases ------------------------------------------------------------------------------------


def run_ops(results: Results, sampler: ClusterSampler, runner: asyncio.Runner, url: str) -> None:
    profile = results.profile
    base = random.Random(4096).randbytes(OBJECT_BYTES)
    for concurrency in CONCURRENCIES:
        _settle()
        say(f"4 KiB PUT, concurrency {concurrency}, {profile.ops_seconds:g} s")
        put, written, put_phase = runner.run(
            put_case(
                [url],
                base,
                f"ops-c{concurrency}",
                concurrency,
                Budget(profile.ops_seconds, profile.max_ops),
                Budget(profile.ops_warmup_s, profile.max_ops),
                functools.partial(sampler.phase, f"PUT 4 KiB c={concurrency}"),
            )
        )
        results.ops.append(OpsRecord(put, put_phase))
        if put.errors:
            results.fail(f"PUT c={concurrency}: {put.errors} errors, first: {put.first_error}")
        say(f"4 KiB GET, concurrency {concurrency}, {profile.ops_seconds:g} s")
        get, get_phase = runner.run(
            get_case(
                [url],
                base,
                f"ops-c{concurrency}",
                written,
                concurrency,
                Budget(profile.ops_seconds, profile.max_ops),
                Budget(profile.ops_warmup_s, profile.max_ops),
                functools.partial(sampler.phase, f"GET 4 KiB c={concurrency}"),
            )
        )
        results.ops.append(OpsRecord(get, get_phase))
        if get.errors:
            results.fail(f"GET c={concurrency}: {get.errors} errors, first: {get.first_error}")


def run_transfers(results: Results, sampler: ClusterSampler, url: str, workdir: Path) -> None:
    profile = results.profile
    largest = max(profile.transfer_sizes)
    download = workdir / "download.bin"
    headers = workdir / "download.headers"
    for size in profile.transfer_sizes:
        label = size_label(size)
        source = workdir / f"source-{size}.bin"
        say(f"generating {label} of random data")
        source_md5 = write_random_file(source, size, seed=size)
        for repeat in range(profile.repeats(size)):
            key = f"blob-{size}-{repeat}"
            # The floor right before each upload, so each upload has a disk figure beside it.
            say(f"disk floor for {label}: {size_label(int(size * 1.5))} as fsync'd 4 MiB files")
            floor = measure_disk_floor(workdir / f"floor-{size}-{repeat}", size)
            results.floors.setdefault(size, []).append(floor)
            _settle()
            say(f"upload {label} (curl), run {repeat + 1}/{profile.repeats(size)}")
            with sampler.phase(f"upload {label} #{repeat + 1}") as up_phase:
                up = curl_upload(url, key, source, size, source_md5)
            results.transfers.append(TransferRecord(up, up_phase, repeat))
            if size == largest and repeat == 0:
                results.rss.append(RssCase("upload", size, up.method, up_phase))
            if not up.ok:
                results.fail(f"upload {label}: {up.detail}")
                continue
            _settle()
            say(f"download {label} (curl), run {repeat + 1}/{profile.repeats(size)}")
            with sampler.phase(f"download {label} #{repeat + 1}") as down_phase:
                down, etag = curl_download(url, key, Path(os.devnull), headers, size)
            if down.status == 200 and not down.detail:
                check_download(down, None, etag, source_md5)
            results.transfers.append(TransferRecord(down, down_phase, repeat))
            if size == largest and repeat == 0:
                results.rss.append(RssCase("download", size, down.method, down_phase))
            if not down.ok:
                results.fail(f"download {label}: {down.detail}")
            # The timed download goes to /dev/null: writing 1 GiB into the page cache costs
            # curl about a CPU-second, which on 2 cores comes out of the cluster's share. The
            # bytes are checked by a second, untimed download into a file.
            say(f"verify {label}: download into a file and compare md5s")
            with sampler.phase(f"verify download {label} #{repeat + 1}") as verify_phase:
                verify, etag = curl_download(url, key, download, headers, size, "verify")
            try:
                if verify.status == 200 and not verify.detail:
                    check_download(verify, download, etag, source_md5)
            finally:
                download.unlink(missing_ok=True)
                headers.unlink(missing_ok=True)
            results.transfers.append(TransferRecord(verify, verify_phase, repeat))
            if not verify.ok:
                results.fail(f"verifying download {label}: {verify.detail}")
        source.unlink()


def run_stream_upload(
    results: Results, sampler: ClusterSampler, runner: asyncio.Runner, url: str
) -> None:
    size = results.profile.stream_size
    label = size_label(size)
    seed = 4242
    say(f"hashing the {label} generated stream (client side, untimed)")
    expected = pattern_md5(size, seed)
    _settle()
    say(f"upload {label} streamed from a generator (aiohttp)")
    with sampler.phase(f"stream upload {label}") as phase:
        up = runner.run(stream_upload(url, f"stream-{size}", size, seed, expected))
    results.transfers.append(TransferRecord(up, phase, 0))
    results.rss.append(RssCase("upload", size, up.method, phase))
    if not up.ok:
        results.fail(f"streamed upload {label}: {up.detail}")


def run_benchmark(results: Results, workdir: Path) -> None:
    cluster_dir = workdir / "cluster"
    say(f"starting {NODES} nodes + gateway ({REDUNDANCY}) in {cluster_dir}")
    with ExitStack() as stack:
        cluster = stack.enter_context(
            running_cluster(cluster_dir, nodes=NODES, redundancy=REDUNDANCY)
        )
        stack.callback(say, "stopping the cluster")
        stack.callback(_ignore_signals)
        gateway_pid = cluster.gateway_pids()[0]
        sampler = ClusterSampler(gateway_pid, [cluster.node_pid(i) for i in range(NODES)])
        sampler.start()
        stack.callback(sampler.stop)
        runner = stack.enter_context(asyncio.Runner(loop_factory=uvloop.new_event_loop))
        say(f"cluster up at {cluster.url}")

        with sampler.phase("idle") as idle:
            time.sleep(1.0)
        results.idle = idle
        run_ops(results, sampler, runner, cluster.url)
        run_transfers(results, sampler, cluster.url, workdir)
        run_stream_upload(results, sampler, runner, cluster.url)


# -- report ------------------------------------------------------------------------------------


def _median_rate(records: list[TransferRecord]) -> float | None:
    rates = [r.transfer.mb_s for r in records if r.transfer.ok]
    return statistics.median(rates) if rates else None


def build_rows(results: Results) -> list[Row]:
    profile = results.profile
    largest = max(profile.transfer_sizes)
    quick_note = " [quick run; target is for 1 GiB]" if profile.name == "quick" else ""
    rows: list[Row] = []
    for size in profile.transfer_sizes:
        label = size_label(size)
        is_target = size == largest
        runs = [
            r
            for r in results.transfers
            if r.transfer.size == size and r.transfer.method != "aiohttp stream"
        ]
        ups = [r for r in runs if r.transfer.direction == "upload"]
        downs = [r for r in runs if r.transfer.direction == "download"]
        how = f"median of {len(ups)}, " if len(ups) > 1 else ""
        up_rate = _median_rate(ups)
        down_rate = _median_rate(downs)
        up_phase = ups[0].phase if ups else None
        cpu = (
            f"CPU s gw {up_phase.gateway_cpu_s:.1f} / nodes {up_phase.nodes_cpu_s:.1f}"
            if up_phase
            else ""
        )
        rows.append(
            Row(
                "transfer",
                f"upload {label} (curl){quick_note if is_target else ''}",
                up_rate,
                "MB/s",
                f"{how}{cpu}",
                TARGET_UPLOAD_MB_S if is_target else None,
            )
        )
        floors = results.floors.get(size, [])
        if floors:
            floor_rate = statistics.median(f.object_mb_s for f in floors)
            raw_rate = statistics.median(f.raw_mb_s for f in floors)
            many = f"median of {len(floors)}, " if len(floors) > 1 else ""
            rows.append(
                Row(
                    "transfer",
                    f"disk floor {label} ({size_label(floors[0].written_bytes)} fsync'd)",
                    floor_rate,
                    "MB/s",
                    f"{many}object bytes/s; raw {raw_rate:,.0f} MB/s",
                )
            )
            # Each upload against the floor measured just before it.
            shares = [
                r.transfer.mb_s / floors[r.repeat].object_mb_s * 100
                for r in ups
                if r.transfer.ok and r.repeat < len(floors) and floors[r.repeat].object_mb_s
            ]
            rows.append(
                Row(
                    "transfer",
                    f"upload {label} / disk floor",
                    statistics.median(shares) if shares else None,
                    "%",
                    "median of per-run ratios" if len(shares) > 1 else "",
                    TARGET_UPLOAD_FLOOR_PCT if is_target else None,
                )
            )
        down_phase = downs[0].phase if downs else None
        cpu = (
            f"CPU s gw {down_phase.gateway_cpu_s:.1f} / nodes {down_phase.nodes_cpu_s:.1f}"
            if down_phase
            else ""
        )
        rows.append(
            Row(
                "transfer",
                f"download {label} (curl){quick_note if is_target else ''}",
                down_rate,
                "MB/s",
                f"{how}{cpu}",
                TARGET_DOWNLOAD_MB_S if is_target else None,
            )
        )
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
    for case in results.rss:
        label = f"{case.label} {size_label(case.size)} ({case.method})"
        phase = case.phase
        rows.append(
            Row(
                "memory",
                f"gateway peak RSS, {label}",
                phase.gateway_peak_rss / MIB,
                "MiB",
                f"{phase.samples} samples",
                TARGET_GATEWAY_RSS_MIB if case.label == "upload" else None,
                at_least=False,
            )
        )
        rows.append(
            Row(
                "memory",
                f"node peak RSS (max of {NODES}), {label}",
                phase.node_max_peak_rss / MIB,
                "MiB",
                f"client peak {phase.client_peak_rss / MIB:.0f} MiB",
            )
        )
    streamed = [r for r in results.transfers if r.transfer.method == "aiohttp stream"]
    for stream in streamed:
        rows.append(
            Row(
                "transfer",
                f"upload {size_label(stream.transfer.size)} (aiohttp stream)",
                stream.transfer.mb_s if stream.transfer.ok else None,
                "MB/s",
                f"CPU s gw {stream.phase.gateway_cpu_s:.1f} / nodes {stream.phase.nodes_cpu_s:.1f}",
            )
        )
    return rows


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
        "machine": {
            "cpus": os.cpu_count(),
            "memory_mib": round(psutil.virtual_memory().total / MIB),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "curl": _curl_version(),
            "load_average_at_start": [round(v, 2) for v in results.load_at_start],
            "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        },
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
                "client_peak_rss_mib": round(c.phase.client_peak_rss / MIB, 1),
                "samples": c.phase.samples,
            }
            for c in results.rss
        ],
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
        " threads; peaks sampled every 50 ms):\n"
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


# -- main --------------------------------------------------------------------------------------


def _space_needed(profile: Profile) -> int:
    largest = max(profile.transfer_sizes)
    stored = sum(s * profile.repeats(s) for s in profile.transfer_sizes) + profile.stream_size
    return int(largest * 3.5 + stored * 1.5) + GIB


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="small sizes and short op runs")
    parser.add_argument("--json-out", type=Path, help="also write the JSON document here")
    parser.add_argument(
        "--tmp-dir", type=Path, help="where to make the temporary folder (default: system temp)"
    )
    parser.add_argument("--ops-seconds", type=float, help="time budget per 4 KiB case")
    parser.add_argument("--logs-out", type=Path, help="copy the cluster logs here before cleanup")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = QUICK if args.quick else FULL
    if args.ops_seconds:
        profile = Profile(
            profile.name,
            profile.transfer_sizes,
            profile.small_repeats,
            profile.stream_size,
            args.ops_seconds,
            profile.ops_warmup_s,
        )
    if shutil.which("curl") is None:
        print("curl is not on PATH", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _raise_interrupt)
    results = Results(profile)
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    interrupted = False
    with tempfile.TemporaryDirectory(prefix="diststorage-bench-", dir=args.tmp_dir) as tmp:
        workdir = Path(tmp)
        if not has_room(workdir, _space_needed(profile)):
            return 2
        try:
            run_benchmark(results, workdir)
        except KeyboardInterrupt:
            interrupted = True
            say("interrupted; the cluster has been stopped")
        finally:
            results.log_issues = scan_logs(workdir / "cluster" / "logs")
            if args.logs_out is not None and (workdir / "cluster" / "logs").is_dir():
                shutil.copytree(workdir / "cluster" / "logs", args.logs_out, dirs_exist_ok=True)
            say(f"removing {workdir}")
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    rows = build_rows(results)
    document = build_document(results, rows, started, time.perf_counter() - clock, interrupted)
    print_report(results, rows, document)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    if interrupted:
        return 130
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
