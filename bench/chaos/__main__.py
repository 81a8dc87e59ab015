"""Chaos benchmark of diststorage: mixed load on a real ec:4+2 cluster of 7 nodes while nodes
are killed, restarted, paused and continued, never more than M=2 at once and never while a
stripe written short during an earlier fault has no spare shard left (see
bench/chaos/faults.py); gateways are killed and the database restarted beside them
(service_faults.py), and the seventh node fills up (filler.py).

    uv run python -m bench.chaos [--quick] [--duration S] [--clients N] [--seed N]
                                 [--budget shards|nodes] [--json-out FILE]

Phases: seed objects; a quiet baseline of the load mix; the faults (load still running); all
nodes back; the load again while repair brings every stripe back to target; an audit that reads
every committed object. Reports operations and errors by kind, read failures of committed
objects and md5 mismatches (both must be 0), time to zero stripes below target, repair MB/s,
and foreground MB/s while repair works as a share of the quiet figure. Exits 1 on any wrong or
lost data. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import psutil
import uvloop

from bench.chaos.document import build_document
from bench.chaos.faults import BACK_TIMEOUT_S, FaultPlan
from bench.chaos.filler import FillPlan
from bench.chaos.phases import BUDGET_NODES, NODES, GatewayDied, Profile, run_phases
from bench.chaos.repair import RepairUnavailable
from bench.chaos.report import ChaosRun, FaultSummary, build_rows, report_text, room_refusals
from bench.chaos.service_faults import ServicePlan
from bench.common.cli import (
    EXIT_MISSING,
    OPEN_GATEWAY_ARGS,
    add_run_options,
    exit_status,
    new_parser,
    pick_profile,
    say,
    write_json,
)
from bench.common.cpu import ProcessTree
from bench.common.interrupt import ignore_interrupts, interruptible_run
from bench.common.load.model import KIB, MIB, LoadMix, SizeClass
from bench.common.load.stats import LoadStats
from bench.common.report import GIB, has_room, keep_logs
from diststorage.local import LocalCluster
from diststorage.testing import running_cluster
from diststorage.testing.private_postgres import PostgresMissing, PrivatePostgres, private_postgres

REDUNDANCY = "ec:4+2"
REPAIR_ARGS = ["--repair-grace", "10"]
GATEWAY_ARGS = ["--node-timeout", "3"]
# Errors in these phases fail the run: no fault is held while they run.
QUIET_PHASES = ("seed", "baseline", "audit")


FULL = Profile(
    "full",
    LoadMix(
        (
            SizeClass("tiny", 0, 4 * KIB, keys=200, weight=30),
            SizeClass("small", 4 * KIB, 128 * KIB, keys=200, weight=25, log_scale=True),
            SizeClass("medium", 128 * KIB, 8 * MIB, keys=100, weight=27, log_scale=True),
            SizeClass("large", 8 * MIB, 48 * MIB, keys=30, weight=15),
            SizeClass("huge", 96 * MIB, 192 * MIB, keys=6, weight=3),
        )
    ),
    seed_fraction=0.5,
    baseline_s=30.0,
    chaos_s=240.0,
    plan=FaultPlan(BUDGET_NODES, hold_s=(3.0, 30.0), gap_s=(1.0, 8.0)),
    services=ServicePlan(
        gateway_hold_s=(3.0, 20.0), gateway_gap_s=(20.0, 60.0), database_gap_s=(60.0, 180.0)
    ),
    repair_timeout_s=600.0,
    replace_ballast=(24, 256 * MIB),
    fill=FillPlan(capacity_bytes=128 * MIB, shard_bytes=2 * MIB),
)
QUICK = Profile(
    "quick",
    LoadMix(
        (
            SizeClass("tiny", 0, 4 * KIB, keys=60, weight=30),
            SizeClass("small", 4 * KIB, 128 * KIB, keys=60, weight=25, log_scale=True),
            SizeClass("medium", 128 * KIB, 4 * MIB, keys=30, weight=27, log_scale=True),
            SizeClass("large", 4 * MIB, 24 * MIB, keys=12, weight=15),
            SizeClass("huge", 48 * MIB, 100 * MIB, keys=3, weight=3),
        )
    ),
    seed_fraction=0.5,
    baseline_s=8.0,
    chaos_s=25.0,
    plan=FaultPlan(BUDGET_NODES, hold_s=(2.0, 14.0), gap_s=(0.5, 3.0)),
    services=ServicePlan(
        gateway_hold_s=(2.0, 6.0), gateway_gap_s=(4.0, 10.0), database_gap_s=(8.0, 15.0)
    ),
    repair_timeout_s=120.0,
    replace_ballast=(2, 64 * MIB),
    fill=FillPlan(capacity_bytes=16 * MIB, shard_bytes=2 * MIB),
)


def gateway_flags() -> set[str]:
    """The long options ``diststorage gateway`` accepts, read from its --help."""
    out = subprocess.run(
        [sys.executable, "-m", "diststorage", "gateway", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "300", "NO_COLOR": "1", "TERM": "dumb"},
    )
    return set(re.findall(r"--[a-z][a-z0-9-]*", out.stdout))


def _gateway_cpu_reader(cluster: LocalCluster) -> Callable[[], float]:
    """CPU seconds of every gateway process so far, those killed as faults included (as last
    read: what one used between its last reading and its death is missed)."""
    trees: dict[int, ProcessTree] = {}
    last: dict[int, float] = {}

    def read() -> float:
        for pid in cluster.gateway_pids():
            try:
                tree = trees.get(pid) or trees.setdefault(pid, ProcessTree(pid))
                last[pid] = tree.cpu_s()
            except psutil.Error:
                pass  # gone since: its last reading stands
        return sum(last.values())

    return read


def run_benchmark(run: ChaosRun, profile: Profile, workdir: Path) -> None:
    cluster_dir = workdir / "cluster"
    gateways = run.faults.gateways
    with ExitStack() as stack:
        postgres: PrivatePostgres | None = None
        if run.faults.database == "postgres":
            postgres = stack.enter_context(private_postgres())
            say(f"PostgreSQL of the run's own on port {postgres.port}")
        say(
            f"starting {NODES} nodes + {gateways} gateway(s) ({REDUNDANCY},"
            f" {' '.join(run.gateway_args)})"
        )
        cluster = stack.enter_context(
            running_cluster(
                cluster_dir,
                nodes=NODES,
                redundancy=REDUNDANCY,
                gateway_args=[*OPEN_GATEWAY_ARGS, *run.gateway_args],
                gateways=gateways,
                metadata_url=None if postgres is None else postgres.url,
            )
        )
        stack.callback(say, "stopping the cluster")
        stack.callback(ignore_interrupts)
        run.stats.gateway_cpu_s = _gateway_cpu_reader(cluster)
        runner = stack.enter_context(asyncio.Runner(loop_factory=uvloop.new_event_loop))
        say(f"cluster up at {cluster.url}")
        runner.run(run_phases(cluster, profile, run, postgres))


def judge(run: ChaosRun) -> None:
    """Adds the failures the figures show to those the phases found."""
    stats = run.stats
    if stats.read_failures:
        run.failures.append(f"{stats.read_failures} read failures of committed objects")
    if stats.md5_mismatches:
        run.failures.append(f"{stats.md5_mismatches} md5 mismatches")
    for phase in stats.phases:
        if phase.name in QUIET_PHASES and phase.errors:
            kinds = ", ".join(f"{k} ×{n}" for k, n in phase.errors.most_common(3))
            count = sum(phase.errors.values())
            run.failures.append(f"{count} errors with no fault held ({phase.name}): {kinds}")
    fewer, _ = room_refusals(stats, run.faults.budget_nodes)
    if fewer:
        run.failures.append(
            f"{fewer} PUTs refused for room with fewer than {run.faults.budget_nodes} nodes out"
            " (a full node must be passed over)"
        )
    fill = run.faults.fill
    if fill is not None and fill.capacity_lost_at_s is not None:
        run.failures.append(
            f"the full node reported another capacity from t={fill.capacity_lost_at_s:.0f} s"
            " (restarted without its --capacity): it was no longer full"
        )
    if run.faults.late_gateways:
        run.failures.append(f"{run.faults.late_gateways} gateway restarts not back in time")
    if run.faults.late_nodes:
        run.failures.append(
            f"nodes not back within {BACK_TIMEOUT_S:g} s of a restart or SIGCONT:"
            f" {run.faults.late_nodes}"
        )


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    add_run_options(
        parser,
        quick_help="a short smoke run, about a minute",
        tmp_help="where to make the temporary folder (default: system temp)",
    )
    parser.add_argument("--duration", type=float, help="seconds of faults (default 240; quick 25)")
    parser.add_argument("--seed", type=int, default=1, help="seeds the load and the faults")
    parser.add_argument("--clients", type=int, default=8, help="concurrent load clients")
    parser.add_argument(
        "--gateway-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra gateway argument, repeatable (e.g. --gateway-arg=--repair-rate=50000000)",
    )
    parser.add_argument(
        "--budget",
        choices=("shards", "nodes"),
        default="shards",
        help="what a new fault must leave intact: every stripe's last spare shard (default),"
        " or only fewer than M nodes out (harsher: beyond the budget of stripes written short)",
    )
    parser.add_argument(
        "--gateways",
        type=int,
        default=2,
        help="gateways sharing the metadata (default 2; with more than one, any of them is"
        " killed and started again as a fault; more than one needs --database postgres)",
    )
    parser.add_argument(
        "--database",
        choices=("postgres", "sqlite"),
        default="postgres",
        help="the metadata database: a PostgreSQL server of the run's own, restarted as a"
        " fault (default), or SQLite in the cluster's folder (one gateway, no database faults)",
    )
    parser.add_argument(
        "--without-repair",
        action="store_true",
        help="for a gateway without repair: no --repair-grace, no /_/repair, no repair figures",
    )
    args = parser.parse_args(argv)
    if args.clients < 1:
        parser.error("--clients must be at least 1")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    if args.gateways < 1:
        parser.error("--gateways must be at least 1")
    if args.gateways > 1 and args.database == "sqlite":
        parser.error("more than one gateway needs --database postgres")
    return args


def _profile(args: argparse.Namespace) -> Profile:
    profile = pick_profile(args.quick, FULL, QUICK, chaos_s=args.duration)
    if args.without_repair or args.budget == "nodes":
        # Without /_/repair there is no spare-shard figure to wait for.
        profile = replace(profile, plan=replace(profile.plan, budget="nodes"))
    return profile


def _space_needed(profile: Profile) -> int:
    # ec:4+2 stores 1.5× the data; overwritten and rebuilt shards wait for garbage collection.
    ballast_count, ballast_size = profile.replace_ballast
    # The fill objects: one copy on every node, about the full node's capacity each.
    fill = 0 if profile.fill is None else profile.fill.capacity_bytes * (NODES + 2)
    return (profile.mix.max_stored_bytes + ballast_count * ballast_size) * 3 + fill + GIB


def _gateway_args(args: argparse.Namespace) -> list[str] | str:
    """The gateway's arguments, or why the run cannot go ahead."""
    wanted = GATEWAY_ARGS + ([] if args.without_repair else REPAIR_ARGS)
    known = gateway_flags()
    missing = [flag for flag in wanted if flag.startswith("--") and flag not in known]
    if missing:
        return (
            f"the gateway does not accept {', '.join(missing)} (see `diststorage gateway --help`);"
            " this benchmark needs repair. Use --without-repair to run the load and the faults"
            " against it anyway."
        )
    return [*wanted, *args.gateway_arg]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = _profile(args)
    gateway_args = _gateway_args(args)
    if isinstance(gateway_args, str):
        print(gateway_args, file=sys.stderr)
        return EXIT_MISSING
    run = ChaosRun(
        profile=profile.name,
        seed=args.seed,
        clients=args.clients,
        chaos_s=profile.chaos_s,
        nodes=NODES,
        redundancy=REDUNDANCY,
        gateway_args=gateway_args,
        with_repair=not args.without_repair,
        stats=LoadStats(gateway_cpu_s=lambda: 0.0),
        faults=FaultSummary(
            BUDGET_NODES, profile.plan.budget, gateways=args.gateways, database=args.database
        ),
    )
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    interrupted = False
    with (
        interruptible_run(),
        tempfile.TemporaryDirectory(prefix="diststorage-chaos-", dir=args.tmp_dir) as tmp,
    ):
        workdir = Path(tmp)
        if not has_room(workdir, _space_needed(profile)):
            return EXIT_MISSING
        try:
            run_benchmark(run, profile, workdir)
        except KeyboardInterrupt:
            interrupted = True
            say("interrupted; the cluster has been stopped")
        except PostgresMissing as exc:
            say(f"!!! {exc}; use --database sqlite --gateways 1 without PostgreSQL")
            return EXIT_MISSING
        except RepairUnavailable as exc:
            say(f"!!! {exc}; this benchmark needs the gateway's repair (or use --without-repair)")
            return EXIT_MISSING
        except GatewayDied as exc:
            run.failures.append(str(exc))
            say(f"!!! {exc}")
        finally:
            run.log_issues = keep_logs(workdir / "cluster" / "logs", args.logs_out)
            say(f"removing {workdir}")
    judge(run)
    report(run, args.json_out, started, time.perf_counter() - clock, interrupted)
    return exit_status(interrupted, bool(run.failures))


def report(
    run: ChaosRun,
    json_out: Path | None,
    started: dt.datetime,
    duration_s: float,
    interrupted: bool,
) -> None:
    """The table, then the JSON document, on stdout; the document also into ``json_out``."""
    rows = build_rows(run)
    document = build_document(
        run, rows, started.isoformat(timespec="seconds"), duration_s, interrupted
    )
    print(report_text(run, rows))
    print("\nJSON:")
    print(json.dumps(document, indent=2))
    write_json(json_out, document)


if __name__ == "__main__":
    sys.exit(main())
