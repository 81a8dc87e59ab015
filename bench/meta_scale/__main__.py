"""Metadata at scale: lookup and listing latencies of the metadata store as it grows to a million
objects, on SQLite and on PostgreSQL, loaded through the store's own API.

    uv run python -m bench.meta_scale [--backend sqlite|postgresql|both] [--objects N] [--quick]
                                      [--json-out FILE]

For each backend: a fresh store (a SQLite file in a temporary folder, or a PostgreSQL database
of its own), loaded with begin_upload + commit_upload up to checkpoints 1,000, 10,000, ... and
N; at each checkpoint, p50/p99 of get_layout and get_info (concurrency 1 and 16) and of
1,000-key listing pages. Target: p99 at N within 2× of p99 at 1,000. Prints a table and a JSON
document; exits 1 only if the store gave a wrong answer. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from bench.common.cli import (
    add_run_options,
    exit_status,
    new_parser,
    pick_profile,
    say,
    write_json,
)
from bench.common.cpu import CpuMeter
from bench.common.interrupt import ignore_interrupts, interruptible_run
from bench.common.postgres import PG_ADMIN_URL, drop_leftovers
from bench.meta_scale.db import BenchDatabase, PlanInputs, postgres_database, sqlite_database
from bench.meta_scale.load import Loader, LoadStep, object_key
from bench.meta_scale.measure import Checkpoint, CpuShare
from bench.meta_scale.report import BackendRun, CheckpointResult, build_document, report_text
from diststorage.meta import MetadataStore

BACKENDS = ("sqlite", "postgresql")
FIRST_CHECKPOINT = 1_000
STORE_TIMEOUT_S = 120.0
# Uploads in flight while loading, per backend, the fastest found on 2 cores: SQLite's writer
# commits up to 128 waiting writes as one transaction; PostgreSQL's pool holds 20 connections,
# and more callers than that only queue for one (and cost CPU doing so).
LOAD_CONCURRENCY = {"sqlite": 128, "postgresql": 20}


@dataclass(frozen=True)
class Profile:
    name: str
    objects: int
    lookups: int
    pages: int

    @property
    def checkpoints(self) -> list[int]:
        """1,000, then every power of ten below ``objects``, then ``objects``."""
        points = [FIRST_CHECKPOINT]
        while points[-1] * 10 < self.objects:
            points.append(points[-1] * 10)
        return points if points[-1] == self.objects else [*points, self.objects]


FULL = Profile("full", objects=1_000_000, lookups=2_000, pages=100)
QUICK = Profile("quick", objects=20_000, lookups=1_000, pages=50)


@contextlib.asynccontextmanager
async def _database(backend: str, folder: Path, admin_url: str) -> AsyncIterator[BenchDatabase]:
    if backend == "sqlite":
        async with sqlite_database(folder) as lite:
            yield lite
    else:
        async with postgres_database(admin_url) as postgres:
            say(f"created PostgreSQL database {postgres.name}")
            yield postgres
            say(f"dropping PostgreSQL database {postgres.name}")


def _plan_inputs(loaded: int) -> PlanInputs:
    key = object_key(loaded // 2).encode()
    prefix = b"photos/2026/07/"
    # The prefix's upper bound, as the store computes it: the last byte plus one.
    return PlanInputs(key, key, prefix, prefix[:-1] + bytes([prefix[-1] + 1]))


async def measure(
    store: MetadataStore, database: BenchDatabase, step: LoadStep, profile: Profile, seed: int
) -> CheckpointResult:
    began = time.perf_counter()
    resident_pct = await database.settle()
    settle_s = time.perf_counter() - began
    began = time.perf_counter()
    # Every PostgreSQL process counts: the pool's connections live as long as the store; a
    # server process that ends in between (autovacuum) is missed.
    with CpuMeter(postgres=True).measure("checkpoint") as use:
        checkpoint = Checkpoint(store, step.end, seed)
        cases = await checkpoint.lookups(profile.lookups)
        cases += await checkpoint.listings(profile.pages)
    cpu = CpuShare.of(use)
    return CheckpointResult(
        step.end,
        step,
        cases,
        await database.size_bytes(),
        settle_s,
        resident_pct,
        time.perf_counter() - began,
        cpu,
        checkpoint.failures,
    )


async def run_backend(
    run: BackendRun,
    profile: Profile,
    seed: int,
    folder: Path,
    admin_url: str,
    on_checkpoint: Callable[[], None],
) -> None:
    async with _database(run.backend, folder, admin_url) as database:
        store = await MetadataStore.open(database.url, STORE_TIMEOUT_S)
        try:
            loader = Loader(store, seed, say)
            for target in profile.checkpoints:
                say(f"{run.backend}: loading to {target:,} ({run.load_concurrency} in flight)")
                step = await loader.load_to(target, run.load_concurrency)
                say(
                    f"{run.backend}: {target:,} objects; the last {target - step.start:,} took"
                    f" {step.seconds:,.1f} s ({step.objects_per_s:,.0f} objects/s); measuring"
                )
                result = await measure(store, database, step, profile, seed)
                run.checkpoints.append(result)
                for failure in result.failures:
                    say(f"!!! FAILURE: {failure}")
                say(
                    f"{run.backend} @ {target:,}: "
                    + ", ".join(
                        f"{c.name} c={c.concurrency} p99 {c.percentile_ms(0.99):.2f} ms"
                        for c in result.cases
                    )
                )
                on_checkpoint()
            run.plans = await database.plans(_plan_inputs(loader.loaded))
        finally:
            await store.close()


async def run_all(
    runs: list[BackendRun],
    profile: Profile,
    seed: int,
    folder: Path,
    admin_url: str,
    on_checkpoint: Callable[[], None],
) -> None:
    for run in runs:
        await run_backend(run, profile, seed, folder, admin_url, on_checkpoint)


# -- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__)
    add_run_options(
        parser,
        quick_help="20,000 objects, fewer calls",
        tmp_help="where the SQLite file's folder goes",
        logs_out=False,
    )
    parser.add_argument("--backend", choices=[*BACKENDS, "both"], default="both")
    parser.add_argument("--objects", type=int, help="objects at the last checkpoint (1,000,000)")
    parser.add_argument("--lookups", type=int, help="timed lookups per case (2,000; quick 1,000)")
    parser.add_argument("--pages", type=int, help="timed pages per listing case (100; quick 50)")
    parser.add_argument(
        "--load-concurrency", type=int, help="uploads in flight while loading (sqlite 128, pg 20)"
    )
    parser.add_argument("--seed", type=int, default=1, help="seeds sizes and the keys sampled")
    parser.add_argument("--pg-admin-url", default=PG_ADMIN_URL, help="creates/drops the database")
    args = parser.parse_args(argv)
    for name in ("objects", "lookups", "pages", "load_concurrency"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.objects is not None and args.objects < FIRST_CHECKPOINT:
        parser.error(f"--objects must be at least {FIRST_CHECKPOINT:,}")
    return args


def _profile(args: argparse.Namespace) -> Profile:
    # An option given as 0 leaves the profile's figure, as if it were not given.
    return pick_profile(
        args.quick,
        FULL,
        QUICK,
        objects=args.objects or None,
        lookups=args.lookups or None,
        pages=args.pages or None,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = _profile(args)
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    runs = [BackendRun(b, args.load_concurrency or LOAD_CONCURRENCY[b]) for b in backends]
    settings: dict[str, Any] = {
        "profile": profile.name,
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "objects": profile.objects,
        "checkpoints": profile.checkpoints,
        "lookups_per_case": profile.lookups,
        "pages_per_case": profile.pages,
        "seed": args.seed,
    }
    clock = time.perf_counter()

    def document(interrupted: bool) -> dict[str, Any]:
        return build_document(runs, settings, time.perf_counter() - clock, interrupted)

    def save_partial() -> None:
        write_json(args.json_out, document(True))

    interrupted = False
    say(f"checkpoints {profile.checkpoints} on {', '.join(backends)}")
    with (
        interruptible_run(),
        tempfile.TemporaryDirectory(prefix="diststorage-meta-", dir=args.tmp_dir) as tmp,
    ):
        try:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                runner.run(
                    run_all(runs, profile, args.seed, Path(tmp), args.pg_admin_url, save_partial)
                )
        except (KeyboardInterrupt, asyncio.CancelledError):
            interrupted = True
            say("interrupted")
        finally:
            # A second Ctrl-C must not leave a database behind.
            ignore_interrupts()
            for name in drop_leftovers(args.pg_admin_url):
                say(f"dropped PostgreSQL database {name} after an interrupted cleanup")
            say(f"removing {tmp}")
    final = document(interrupted)
    print(report_text(runs, profile.name))
    print("\nJSON:")
    print(json.dumps(final, indent=2))
    write_json(args.json_out, final)
    return exit_status(interrupted, any(run.failures for run in runs))


if __name__ == "__main__":
    sys.exit(main())
