"""What a gateway's worker processes buy on this machine: two clusters side by side in one
run, identical (6 nodes, ec:4+2, SQLite) but for their gateway's ``--workers`` (1 and 2):

    uv run python -m bench.workers [--rounds 3] [--ops-seconds 8] [--concurrency 32]
                                   [--large-mib 1024] [--postgres] [--json-out FILE]

Each round runs on each cluster in turn (the order flips every round, so neither always
runs warm): 4 KiB PUTs at the concurrency (distinct keys), GETs of what they wrote (4 KiB is
under the inline bound, so these are inline objects, read from the metadata database), then
one upload and one download of a ``--large-mib`` object through curl (0 skips them). The
client keeps ``concurrency`` keep-alive connections, which the kernel spreads over the
workers. ``--postgres`` gives each cluster a PostgreSQL database of its own instead
(``--pg-admin-url``): several processes writing one SQLite file contend for its lock (see
``GatewaySettings.worker_count``). Prints each measurement, the median of each mode, and 2
workers against 1; exits non-zero if any operation failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import psutil

from bench.common.cli import OPEN_GATEWAY_ARGS, say
from bench.common.curl import check_download, curl_download, curl_upload, write_random_file
from bench.common.ops import OBJECT_BYTES, Budget, get_case, put_case
from bench.common.postgres import PG_ADMIN_URL, scratch_database
from bench.common.sampler import settle
from diststorage.local import LocalCluster
from diststorage.testing import running_cluster

MODES = (1, 2)
NODES = 6
Figures = dict[str, list[float]]


def gateway_cpu_s(cluster: LocalCluster) -> float:
    """CPU seconds of the gateway's process tree (supervisor and workers)."""
    total = 0.0
    for pid in cluster.gateway_pids():
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(pid)
            for member in [process, *process.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):
                    times = member.cpu_times()
                    total += times.user + times.system
    return total


@contextlib.contextmanager
def gateway_cpu(cluster: LocalCluster) -> Iterator[list[float]]:
    """Yields a list holding, after the block, the gateway's CPU in % of one core."""
    result: list[float] = []
    cpu0, wall0 = gateway_cpu_s(cluster), time.perf_counter()
    yield result
    result.append(100.0 * (gateway_cpu_s(cluster) - cpu0) / (time.perf_counter() - wall0))


async def ops_round(
    cluster: LocalCluster, figures: Figures, args: argparse.Namespace, n: int
) -> list[str]:
    base = os.urandom(OBJECT_BYTES)
    timed, warm = Budget(args.ops_seconds, 10**9), Budget(1.0, 10**9)
    prefix = f"ops-{n}"
    put, written, put_cpu = await put_case(
        [cluster.url], base, prefix, args.concurrency, timed, warm, lambda: gateway_cpu(cluster)
    )
    get, get_cpu = await get_case(
        [cluster.url], base, prefix, written, args.concurrency, timed, warm,
        lambda: gateway_cpu(cluster),
    )  # fmt: skip
    failures = []
    for result, cpu in ((put, put_cpu), (get, get_cpu)):
        op = result.op.lower()
        figures[f"{op}_ops_per_s"].append(result.ops_per_s)
        figures[f"{op}_p99_ms"].append(result.percentile_ms(0.99))
        figures[f"{op}_gateway_cpu_pct"].append(cpu[0])
        say(
            f"  {result.op}: {result.ops_per_s:.0f} ops/s, p99 {result.percentile_ms(0.99):.1f} "
            f"ms, gateway CPU {cpu[0]:.0f} %, errors {result.errors}"
        )
        if result.errors:
            failures.append(f"{result.op}: {result.errors} errors, first {result.first_error}")
    return failures


def large_round(
    cluster: LocalCluster, figures: Figures, source: Path, md5: str, size: int, n: int
) -> list[str]:
    key = f"large-{n}"
    settle()
    up = curl_upload(cluster.url, key, source, size, md5)
    settle()
    headers = source.with_suffix(".headers")
    down, etag = curl_download(cluster.url, key, Path(os.devnull), headers, size)
    if down.status == 200 and not down.detail:
        check_download(down, None, etag, md5)
    headers.unlink(missing_ok=True)
    failures = []
    for transfer in (up, down):
        figures[f"{transfer.direction}_mb_s"].append(transfer.mb_s)
        say(f"  {transfer.direction}: {transfer.mb_s:.0f} MB/s")
        if not transfer.ok:
            failures.append(f"{transfer.direction}: {transfer.detail}")
    return failures


def summary(results: dict[int, Figures]) -> dict[str, Any]:
    medians = {
        mode: {name: round(statistics.median(values), 1) for name, values in figures.items()}
        for mode, figures in results.items()
    }
    ratios = {
        name: round(medians[2][name] / medians[1][name], 2)
        for name in medians[1]
        if medians[1][name] and (name.endswith("_per_s") or name.endswith("_mb_s"))
    }
    return {"median": {f"workers={m}": v for m, v in medians.items()}, "two_over_one": ratios}


def run(workdir: Path, args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    size = args.large_mib << 20
    source = workdir / "large-source.bin"
    md5 = write_random_file(source, size, seed=size) if size else ""
    results: dict[int, Figures] = {m: {} for m in MODES}
    for figures in results.values():
        for name in ("put_ops_per_s", "get_ops_per_s", "put_p99_ms", "get_p99_ms"):
            figures[name] = []
        for name in ("put_gateway_cpu_pct", "get_gateway_cpu_pct"):
            figures[name] = []
        if size:
            figures["upload_mb_s"], figures["download_mb_s"] = [], []
    failures: list[str] = []
    with asyncio.Runner() as runner, ExitStack() as stack:
        databases = contextlib.AsyncExitStack()
        stack.callback(lambda: runner.run(databases.aclose()))
        clusters = {}
        for mode in MODES:
            url = None
            if args.postgres:
                database = runner.run(
                    databases.enter_async_context(scratch_database(args.pg_admin_url))
                )
                url = database.url
            clusters[mode] = stack.enter_context(
                running_cluster(
                    workdir / f"workers-{mode}",
                    nodes=NODES,
                    gateway_args=OPEN_GATEWAY_ARGS,
                    metadata_url=url,
                    gateway_workers=mode,
                )
            )
        for n in range(args.rounds):
            for mode in MODES if n % 2 == 0 else MODES[::-1]:
                say(f"round {n + 1}, --workers {mode}")
                cluster = clusters[mode]
                failures += runner.run(ops_round(cluster, results[mode], args, n))
                if size:
                    failures += large_round(cluster, results[mode], source, md5, size, n)
    source.unlink(missing_ok=True)
    report = {
        "concurrency": args.concurrency,
        "object_bytes": OBJECT_BYTES,
        "large_bytes": size,
        "rounds": args.rounds,
        "cpus": os.cpu_count(),
        "metadata": "postgresql" if args.postgres else "sqlite",
        "rounds_by_mode": {f"workers={m}": v for m, v in results.items()},
        **summary(results),
        "failures": failures,
        "load_average": [round(v, 1) for v in psutil.getloadavg()],
    }
    return report, failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ops-seconds", type=float, default=8.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--postgres", action="store_true", help="PostgreSQL, not SQLite")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="creates/drops databases")
    parser.add_argument("--tmp-dir", type=Path)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-workers-", dir=args.tmp_dir) as folder:
        report, failures = run(Path(folder), args)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    for failure in failures:
        print(f"FAILED: {failure}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
