"""Scale-out benchmark of diststorage: one gateway on SQLite against two gateways sharing one
PostgreSQL database, each in front of the same kind of 6-node ec:4+2 cluster on loopback.

    uv run python -m bench.scale_out [--quick] [--json-out FILE]

For each configuration: 4 KiB PUT and GET ops/s (p50/p99) at concurrency 32, spread round-robin
over its gateways; a 1 GiB upload through the first gateway and its download through the last,
md5-checked. For two gateways, also a 60 s mixed load (PUT/GET/DELETE, 1 KiB–8 MiB) from 64
clients spread over both, every read checked against what its key last committed. Prints a
table and a JSON document; exits 1 if any operation failed or any data came back wrong, never
because a figure is low. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import uvloop

from bench.common.cli import (
    EXIT_MISSING,
    add_run_options,
    exit_status,
    load_average,
    new_parser,
    pick_profile,
    say,
    write_json,
)
from bench.common.curl import write_random_file
from bench.common.interrupt import default_signals, stop_on_interrupt
from bench.common.postgres import PG_ADMIN_URL, PG_CONNECT_TIMEOUT_S, drop_leftovers
from bench.common.report import GIB, MIB, has_room, size_label
from bench.scale_out.config import (
    CONFIGS,
    Bench,
    GatewayDied,
    Profile,
)
from bench.scale_out.mixed import MIX
from bench.scale_out.report import Results, build_document, report_text

FULL = Profile("full", 20_000, 1_000, 1 * GIB, 60.0, 64)
QUICK = Profile("quick", 2_000, 200, 256 * MIB, 15.0, 64)


async def _probe_postgres(admin_url: str) -> None:
    connection = await asyncpg.connect(admin_url, timeout=PG_CONNECT_TIMEOUT_S)
    await connection.close()


def _space_needed(profile: Profile) -> int:
    # The source file and the verifying download; ec:4+2 stores 1.5× the object, and the mixed
    # load's replaced objects wait for garbage collection.
    return int(profile.transfer_bytes * 3.5) + MIX.max_stored_bytes * 3 + GIB


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    add_run_options(
        parser,
        quick_help="256 MiB, 2,000 ops, 15 s mixed",
        tmp_help="where to make the temporary folder",
    )
    parser.add_argument("--only", choices=[c.name for c in CONFIGS], help="one configuration")
    parser.add_argument("--ops", type=int, help="timed 4 KiB operations per case")
    parser.add_argument("--mixed-seconds", type=float, help="length of the mixed load")
    parser.add_argument("--clients", type=int, help="mixed-load clients (default 64)")
    parser.add_argument("--seed", type=int, help="seeds the mixed load (default 1)")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="creates/drops the database")
    args = parser.parse_args(argv)
    if args.ops is not None and args.ops < 1:
        parser.error("--ops must be at least 1")
    if args.clients is not None and args.clients < 2:
        parser.error("--clients must be at least 2 (one per gateway)")
    if args.mixed_seconds is not None and args.mixed_seconds <= 0:
        parser.error("--mixed-seconds must be positive")
    return args


def _profile(args: argparse.Namespace) -> Profile:
    return pick_profile(
        args.quick,
        FULL,
        QUICK,
        small_ops=args.ops,
        mixed_s=args.mixed_seconds,
        clients=args.clients,
        seed=args.seed,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = _profile(args)
    configs = [c for c in CONFIGS if args.only in (None, c.name)]
    if shutil.which("curl") is None:
        print("curl is not on PATH", file=sys.stderr)
        return EXIT_MISSING
    stop_on_interrupt()
    results = Results(profile.to_json())
    started = dt.datetime.now(dt.UTC)
    clock = time.perf_counter()
    interrupted = False
    say(f"scale-out benchmark ({profile.name}); load average {load_average()}")
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            if any(c.postgres for c in configs):
                try:
                    runner.run(_probe_postgres(args.pg_admin_url))
                except (OSError, asyncpg.PostgresError) as exc:
                    print(f"PostgreSQL at {args.pg_admin_url}: {exc}", file=sys.stderr)
                    return EXIT_MISSING
            with tempfile.TemporaryDirectory(prefix="diststorage-scale-", dir=args.tmp_dir) as tmp:
                workdir = Path(tmp)
                if not has_room(workdir, _space_needed(profile)):
                    return EXIT_MISSING
                bench = Bench(profile, results, runner, workdir, args.pg_admin_url, args.logs_out)
                try:
                    source = workdir / "source.bin"
                    say(f"generating {size_label(profile.transfer_bytes)} of random data")
                    source_md5 = write_random_file(source, profile.transfer_bytes, seed=7)
                    for config in configs:
                        bench.run_config(config, source, source_md5)
                except KeyboardInterrupt:
                    interrupted = True
                    say("interrupted; clusters stopped, databases dropped")
                except GatewayDied as exc:
                    bench.fail(str(exc))
                finally:
                    say(f"removing {workdir}")
    finally:
        # If a drop was cut short, one more try from a fresh connection and event loop.
        with contextlib.suppress(OSError, asyncpg.PostgresError):
            for name in drop_leftovers(args.pg_admin_url):
                say(f"dropped PostgreSQL database {name} after an interrupted cleanup")
    default_signals()
    report(results, profile, args.json_out, started, time.perf_counter() - clock, interrupted)
    return exit_status(interrupted, bool(results.failures))


def report(
    results: Results,
    profile: Profile,
    json_out: Path | None,
    started: dt.datetime,
    duration_s: float,
    interrupted: bool,
) -> None:
    """The tables, then the JSON document, on stdout; the document also into ``json_out``."""
    document = build_document(
        results, started.isoformat(timespec="seconds"), duration_s, interrupted
    )
    print(report_text(results, profile.transfer_bytes))
    print("\nJSON:")
    print(json.dumps(document, indent=2))
    write_json(json_out, document)


if __name__ == "__main__":
    sys.exit(main())
