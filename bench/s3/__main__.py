"""Benchmark of the S3 front end against the native API, on one real 6-node ec:4+2 cluster on
loopback, in a temporary folder.

    uv run python -m bench.s3 [--quick] [--transfers-only] [--json-out FILE]

Measures, in the same run and alternating: large upload and download rates of boto3
(upload_file / download_file) and aws-cli (``s3 cp``) against the native client; 4 KiB PUT and
GET at concurrency 16, signed, through both fronts; the gateway's RSS during a multipart upload
with 10 parts in flight; and the CPU cost of checking a signature, in process. Prints a table
and a JSON document; exits non-zero if any data came back wrong or any operation failed, never
because a target was missed. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
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
from bench.common.report import GIB, has_room, keep_logs
from bench.s3.phases import run_benchmark
from bench.s3.profile import FULL, QUICK, Profile, Results
from bench.s3.report import build_document, build_rows, print_report


def _space_needed(profile: Profile) -> int:
    # The source and one download at a time, plus what ec:4+2 stores (1.5×) of every object:
    # one per client and round, and the multipart case's.
    objects = 3 * profile.transfer_rounds + 1
    return int(profile.transfer_bytes * (2 + 1.5 * objects)) + GIB


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    add_run_options(
        parser,
        quick_help="256 MiB transfers, 3 s op cases",
        tmp_help="where to make the temporary folder (default: system temp)",
    )
    parser.add_argument("--ops-seconds", type=float, help="time budget per 4 KiB case")
    parser.add_argument("--transfer-mib", type=int, help="size of the large transfers, MiB")
    parser.add_argument(
        "--transfers-only",
        action="store_true",
        help="only the large uploads and downloads (no memory, 4 KiB or signature case)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    transfer_bytes = args.transfer_mib * (1 << 20) if args.transfer_mib else None
    profile = pick_profile(
        args.quick,
        FULL,
        QUICK,
        ops_seconds=args.ops_seconds or None,
        transfer_bytes=transfer_bytes,
        transfers_only=args.transfers_only or None,
    )
    results = Results(profile)
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    interrupted = False
    with (
        interruptible_run(),
        tempfile.TemporaryDirectory(prefix="diststorage-bench-s3-", dir=args.tmp_dir) as tmp,
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


if __name__ == "__main__":
    sys.exit(main())
