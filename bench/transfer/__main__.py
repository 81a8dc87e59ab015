"""Benchmark of diststorage: a real 6-node ec:4+2 cluster on loopback, in a temporary folder.

    uv run python -m bench.transfer [--quick] [--json-out FILE]
    uv run python -m bench.transfer --link-comparison [--link-size-mib N] [--link-rounds N]
    uv run python -m bench.transfer --baseline REV [--rounds N] [--size-mib N] [--large-mib N]

Measures large-object upload and download rates (curl), 4 KiB PUT/GET rates and latencies
(aiohttp), peak RSS of the gateway and nodes during big uploads, and the disk floor the uploads
are compared with. Prints a table and a JSON document; exits non-zero if any data came back
wrong or any operation failed, never because a target was missed. See bench/README.md.
``--link-comparison`` instead measures what mutual TLS on the gRPC links costs large
transfers (bench/transfer/links.py); ``--baseline REV`` runs the working tree and REV side by
side, alternating, and reports each figure's ratio new/baseline (bench/transfer/baseline.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common.cli import (
    EXIT_MISSING,
    add_run_options,
    exit_status,
    new_parser,
    pick_profile,
    say,
    write_json,
)
from bench.common.interrupt import interruptible_run
from bench.common.report import (
    GIB,
    has_room,
    keep_logs,
)
from bench.transfer.baseline import BASELINE, NEW, BaselineConfig, BaselineRun, run_baseline
from bench.transfer.baseline_report import print_baseline
from bench.transfer.links import print_comparison, run_link_comparison
from bench.transfer.phases import run_benchmark
from bench.transfer.report import build_document, build_rows, print_report
from bench.transfer.results import (
    FULL,
    QUICK,
    Profile,
    Results,
)


def _space_needed(profile: Profile) -> int:
    largest = max(profile.transfer_sizes)
    stored = sum(s * profile.repeats(s) for s in profile.transfer_sizes) + profile.stream_size
    return int(largest * 3.5 + stored * 1.5) + GIB


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    add_run_options(
        parser,
        quick_help="small sizes and short op runs",
        tmp_help="where to make the temporary folder (default: system temp)",
    )
    parser.add_argument("--ops-seconds", type=float, help="time budget per 4 KiB case")
    parser.add_argument(
        "--link-comparison",
        action="store_true",
        help="only compare large transfers over mTLS and --insecure-cluster links, alternating",
    )
    parser.add_argument("--link-size-mib", type=int, default=1024, help="object size (MiB)")
    parser.add_argument("--link-rounds", type=int, default=2, help="rounds per mode")
    baseline = parser.add_argument_group("baseline comparison (--baseline REV)")
    baseline.add_argument(
        "--baseline",
        metavar="REV",
        help="run the working tree and REV side by side, alternating, and compare",
    )
    baseline.add_argument("--rounds", type=int, default=3, help="rounds per side")
    baseline.add_argument("--size-mib", type=int, default=1024, help="large object size (MiB)")
    baseline.add_argument(
        "--large-mib", type=int, help="also a transfer of this size (MiB) per side and round"
    )
    for flag, sides in (
        ("--gateway-arg", "both sides'"),
        ("--baseline-gateway-arg", "the baseline's"),
        ("--new-gateway-arg", "the working tree's"),
    ):
        baseline.add_argument(
            flag,
            action="append",
            default=[],
            metavar="ARG",
            help=f"one more argument of {sides} gateway (repeatable; --flag=--x=1 for dashes)",
        )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = pick_profile(args.quick, FULL, QUICK, ops_seconds=args.ops_seconds or None)
    if shutil.which("curl") is None:
        print("curl is not on PATH", file=sys.stderr)
        return EXIT_MISSING
    if args.link_comparison:
        return _compare_links(args)
    if args.baseline:
        return _compare_baseline(args)
    results = Results(profile)
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    interrupted = False
    with (
        interruptible_run(),
        tempfile.TemporaryDirectory(prefix="diststorage-bench-", dir=args.tmp_dir) as tmp,
    ):
        workdir = Path(tmp)
        if not has_room(workdir, _space_needed(profile)):
            return EXIT_MISSING
        try:
            run_benchmark(results, workdir)
        except KeyboardInterrupt:
            interrupted = True
            say("interrupted; the cluster has been stopped")
        finally:
            results.log_issues = keep_logs(workdir / "cluster" / "logs", args.logs_out)
            say(f"removing {workdir}")
    rows = build_rows(results)
    document = build_document(results, rows, started, time.perf_counter() - clock, interrupted)
    print_report(results, rows, document)
    write_json(args.json_out, document)
    return exit_status(interrupted, bool(results.failures))


def _compare_links(args: argparse.Namespace) -> int:
    size = args.link_size_mib << 20
    with (
        interruptible_run(),
        tempfile.TemporaryDirectory(prefix="diststorage-links-", dir=args.tmp_dir) as tmp,
    ):
        workdir = Path(tmp)
        # The source, and what both clusters store of one object per round at ec:4+2.
        if not has_room(workdir, int(size * (1 + 1.5 * 2 * args.link_rounds)) + GIB):
            return EXIT_MISSING
        comparison = run_link_comparison(workdir, size, args.link_rounds)
    print_comparison(comparison)
    write_json(args.json_out, comparison.to_json())
    return 1 if comparison.failures else 0


def _compare_baseline(args: argparse.Namespace) -> int:
    config = BaselineConfig(
        rev=args.baseline,
        rounds=args.rounds,
        size=args.size_mib << 20,
        large_size=args.large_mib << 20 if args.large_mib else None,
        ops_seconds=args.ops_seconds or (3.0 if args.quick else 10.0),
        ops_warmup_s=0.5 if args.quick else 1.0,
        gateway_args={
            BASELINE: (*args.gateway_arg, *args.baseline_gateway_arg),
            NEW: (*args.gateway_arg, *args.new_gateway_arg),
        },
    )
    run = BaselineRun(config)
    interrupted = False
    with (
        interruptible_run(),
        tempfile.TemporaryDirectory(prefix="diststorage-baseline-", dir=args.tmp_dir) as tmp,
    ):
        workdir = Path(tmp)
        # The sources, the disk floor, and what both clusters store of each round at ec:4+2.
        sizes = sum(config.sizes)
        if not has_room(workdir, int(sizes * (1 + 1.5 * 2 * config.rounds)) + 2 * GIB):
            return EXIT_MISSING
        try:
            run_baseline(run, workdir)
        except KeyboardInterrupt:
            interrupted = True
            say("interrupted; the clusters have been stopped")
        except (RuntimeError, subprocess.CalledProcessError) as error:
            # REV unknown to git, a side importing the wrong code, a cluster that did not start.
            run.fail(str(error))
        finally:
            say(f"removing {workdir}")
    print_baseline(run)
    write_json(args.json_out, run.to_json())
    return exit_status(interrupted, bool(run.failures))


if __name__ == "__main__":
    sys.exit(main())
