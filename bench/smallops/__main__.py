"""4 KiB PUT and GET at concurrency 16 against a baseline commit, in the same run:

    uv run python -m bench.smallops --baseline-src DIR [--database sqlite|postgres]
        [--rounds N] [--seconds S] [--json-out FILE]

Two real 3-node ec:2+1 clusters side by side (4 KiB objects are kept inline and touch no
node: fewer nodes, less noise), one whose processes run this tree and one whose processes run
the code under ``--baseline-src`` (a ``src`` folder, e.g. of a ``git worktree`` of the
starting commit, put first on their PYTHONPATH). Each round runs a PUT case and then a GET
case of the keys it wrote on each cluster, the order of the two clusters flipping every
round, so that both see the same machine. Prints every round, then per side the median ops/s
and p50/p99 over all rounds' latencies pooled, and the ratio of this tree to the baseline:
of the two medians, and the median of each round's own ratio.
Exits non-zero only if an operation failed.
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
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import uvloop

from bench.common.cli import OPEN_GATEWAY_ARGS, say
from bench.common.ops import OBJECT_BYTES, Budget, OpsResult, get_case, put_case
from bench.common.postgres import PG_ADMIN_URL, scratch_database
from bench.common.sampler import settle
from diststorage.local import LocalCluster
from diststorage.testing import running_cluster

SIDES = ("baseline", "tree")
OPS = ("PUT", "GET")
CONCURRENCY = 16
NODES = 3
REDUNDANCY = "ec:2+1"
MAX_OPS = 10_000_000


@dataclass
class Side:
    name: str
    ops_per_s: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    latencies_ms: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    cpu_ms_per_op: dict[str, list[float]] = field(default_factory=lambda: {op: [] for op in OPS})
    errors: list[str] = field(default_factory=list)

    def add(self, result: OpsResult, cpu_s: float) -> None:
        self.ops_per_s[result.op].append(result.ops_per_s)
        self.latencies_ms[result.op].extend(result.latencies_ms)
        self.cpu_ms_per_op[result.op].append(1000 * cpu_s / max(result.ops, 1))
        if result.errors:
            self.errors.append(f"{self.name} {result.op}: {result.errors}, {result.first_error}")

    def summary(self, op: str) -> dict[str, Any]:
        pooled = OpsResult(op, CONCURRENCY, 0, 0, 0.0, self.latencies_ms[op])
        return {
            "ops_per_s_median": round(statistics.median(self.ops_per_s[op]), 1),
            "ops_per_s_rounds": [round(x, 1) for x in self.ops_per_s[op]],
            "p50_ms": round(pooled.percentile_ms(0.50), 2),
            "p99_ms": round(pooled.percentile_ms(0.99), 2),
            "gateway_cpu_ms_per_op_median": round(statistics.median(self.cpu_ms_per_op[op]), 3),
        }


class GatewayCpu:
    def __init__(self, pids: list[int]) -> None:
        self._processes = [psutil.Process(pid) for pid in pids]
        self.seconds = 0.0

    def _now(self) -> float:
        total = 0.0
        for process in self._processes:
            for each in [process, *process.children(recursive=True)]:
                times = each.cpu_times()
                total += times.user + times.system
        return total

    @contextlib.contextmanager
    def measured(self) -> Iterator[GatewayCpu]:
        started = self._now()
        yield self
        self.seconds = self._now() - started


async def one_round(side: Side, cluster: LocalCluster, n: int, seconds: float) -> None:
    base = os.urandom(OBJECT_BYTES)
    cpu = GatewayCpu(cluster.gateway_pids())
    timed, warmup = Budget(seconds, MAX_OPS), Budget(0.5, MAX_OPS)
    prefix = f"small-{n}"
    settle()
    put, written, _ = await put_case(
        [cluster.url], base, prefix, CONCURRENCY, timed, warmup, cpu.measured
    )
    side.add(put, cpu.seconds)
    settle()
    get, _ = await get_case(
        [cluster.url], base, prefix, written, CONCURRENCY, timed, warmup, cpu.measured
    )
    side.add(get, cpu.seconds)
    say(
        f"round {n + 1} {side.name:8}: PUT {put.ops_per_s:7.1f} ops/s "
        f"p99 {put.percentile_ms(0.99):6.2f} ms, GET {get.ops_per_s:7.1f} ops/s "
        f"p99 {get.percentile_ms(0.99):6.2f} ms"
    )


@contextlib.asynccontextmanager
async def database_urls(database: str) -> AsyncIterator[dict[str, str | None]]:
    if database == "sqlite":
        yield dict.fromkeys(SIDES)
        return
    async with AsyncExitStack() as stack:
        urls: dict[str, str | None] = {}
        for side in SIDES:
            scratch = await stack.enter_async_context(scratch_database(PG_ADMIN_URL))
            urls[side] = scratch.url
        yield urls


async def run(args: argparse.Namespace, workdir: Path) -> dict[str, Side]:
    sides = {name: Side(name) for name in SIDES}
    baseline_env = {"PYTHONPATH": args.baseline_src}
    async with database_urls(args.database) as urls:
        with ExitStack() as stack:
            clusters = {
                name: stack.enter_context(
                    running_cluster(
                        workdir / name,
                        nodes=NODES,
                        redundancy=REDUNDANCY,
                        gateway_args=OPEN_GATEWAY_ARGS,
                        metadata_url=urls[name],
                        env=baseline_env if name == "baseline" else {},
                    )
                )
                for name in SIDES
            }
            for n in range(args.rounds):
                order = SIDES if n % 2 == 0 else SIDES[::-1]
                for name in order:
                    await one_round(sides[name], clusters[name], n, args.seconds)
    return sides


def report(sides: dict[str, Side], args: argparse.Namespace) -> dict[str, Any]:
    document: dict[str, Any] = {"database": args.database, "rounds": args.rounds, "ops": {}}
    print(f"4 KiB ops at concurrency {CONCURRENCY}, {args.database}, {args.rounds} rounds")
    for op in OPS:
        figures = {name: sides[name].summary(op) for name in SIDES}
        base, tree = (figures[name]["ops_per_s_median"] for name in SIDES)
        ratio = tree / base if base else 0.0
        # The two sides of one round ran back to back: their ratio is the least disturbed by
        # load that comes and goes over the run.
        per_round = [
            t / b
            for b, t in zip(
                sides["baseline"].ops_per_s[op], sides["tree"].ops_per_s[op], strict=True
            )
            if b
        ]
        round_ratio = statistics.median(per_round) if per_round else 0.0
        document["ops"][op] = figures | {
            "ratio": round(ratio, 3),
            "round_ratios": [round(r, 3) for r in per_round],
            "round_ratio_median": round(round_ratio, 3),
        }
        for name in SIDES:
            f = figures[name]
            print(
                f"{op} {name:8}: {f['ops_per_s_median']:8.1f} ops/s  p50 {f['p50_ms']:6.2f} ms"
                f"  p99 {f['p99_ms']:6.2f} ms  gateway {f['gateway_cpu_ms_per_op_median']:.3f}"
                f" CPU-ms/op  rounds {f['ops_per_s_rounds']}"
            )
        print(
            f"{op} tree / baseline: {ratio:.2f}x of the medians, {round_ratio:.2f}x the median"
            f" of the rounds' ratios {document['ops'][op]['round_ratios']}"
        )
    document["errors"] = [e for side in sides.values() for e in side.errors]
    for error in document["errors"]:
        print(f"FAILED: {error}")
    return document


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.smallops", description=__doc__)
    parser.add_argument("--baseline-src", required=True, help="the baseline's src folder")
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0, help="each case's time budget")
    parser.add_argument("--json-out", type=Path)
    parser.add_argument("--tmp-dir", type=Path)
    args = parser.parse_args()
    started = time.perf_counter()
    args.baseline_src = str(Path(args.baseline_src).resolve())
    with (
        tempfile.TemporaryDirectory(prefix="bench-smallops-", dir=args.tmp_dir) as tmp,
        asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
    ):
        sides = runner.run(run(args, Path(tmp)))
    document = report(sides, args)
    document["wall_s"] = round(time.perf_counter() - started, 1)
    if args.json_out:
        args.json_out.write_text(json.dumps(document, indent=2) + "\n")
    return 1 if document["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
