"""S3 listings over a million keys in one folder: page latency and reads per page of
``MetadataStore.list_keys`` on SQLite and PostgreSQL, and the plans of its two statements.

    uv run python -m bench.meta_scale.skip_scan [--backend sqlite|postgresql|both]
                                                [--folder-keys N] [--runs N]

The rows go in with one bulk statement (SQLite executemany, PostgreSQL COPY), not through the
upload path: the listing is what is measured. Keys: 500 plain ``a…`` keys, ``big/`` holding N
keys (10^6 by default), 1,000 folders ``dirs/NNNN/`` of 100 keys each, 5,000 plain ``c…`` keys.
Each case is a 1,000-entry page, timed ``--runs`` times (p50, p99 in ms) with its SELECTs
counted. A one-off measurement, not a test: it fails on nothing but a wrong page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common.cli import say
from bench.common.postgres import PG_ADMIN_URL, scratch_database
from diststorage.meta import KeyPage, MetadataStore
from diststorage.testing.direct_db import DirectDatabase, recorded_object_reads

NAMESPACE = "default"
NAMESPACE_ID = 1
PAGE = 1000
INSERT_BATCH = 50_000
COLUMNS = (
    "id, namespace_id, key, state, size_bytes, md5_hex, content_type, policy, "
    "stripe_size_bytes, segment_stripes, gateway_id, created_at, committed_at, part_count"
)
# (what, prefix, delimiter, start_after, entries the page must hold)
CASES = (
    ("no delimiter, 1000 keys of big/", "big/", "", "", 1000),
    ("'/' from the start: 500 keys, big/, 499 keys", "", "/", "", 1000),
    ("'/' continued from big/ (the jump)", "", "/", "big/", 1000),
    ("'/' under dirs/: 1000 folders of 100 keys", "dirs/", "/", "", 1000),
    ("'/' under big/: 1000 plain keys", "big/", "/", "", 1000),
)


def keys(folder_keys: int) -> Iterator[str]:
    yield from (f"a{i:04d}" for i in range(500))
    yield from (f"big/{i:08d}" for i in range(folder_keys))
    yield from (f"dirs/{i // 100:04d}/{i % 100:03d}" for i in range(100_000))
    yield from (f"c{i:05d}" for i in range(5_000))


@dataclass
class Database:
    store_url: str
    direct: DirectDatabase


@contextlib.asynccontextmanager
async def database(dialect: str) -> AsyncIterator[Database]:
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory(prefix="skip-scan-") as folder:
            path = Path(folder) / "m.db"
            yield Database(f"sqlite:///{path}", DirectDatabase(sqlite_path=path))
        return
    async with scratch_database(PG_ADMIN_URL) as scratch:
        yield Database(scratch.url, DirectDatabase(pg_url=scratch.url))


async def measure_case(
    store: MetadataStore, case: tuple[str, str, str, str, int], runs: int
) -> tuple[float, float, int]:
    _, prefix, delimiter, start_after, entries = case
    timings = []
    reads = 0
    for _ in range(runs):
        with recorded_object_reads(store) as sent:
            began = time.perf_counter()
            page: KeyPage = await store.list_keys(NAMESPACE, prefix, delimiter, start_after, PAGE)
            timings.append((time.perf_counter() - began) * 1000)
        reads = len(sent)
        got = len(page.objects) + len(page.common_prefixes)
        assert got == entries, (case, got)
    timings.sort()
    return (
        statistics.median(timings),
        timings[min(len(timings) - 1, len(timings) * 99 // 100)],
        reads,
    )


async def run_backend(dialect: str, folder_keys: int, runs: int) -> None:
    async with database(dialect) as db:
        store = await MetadataStore.open(db.store_url, 120)
        try:
            began = time.perf_counter()
            await db.direct.insert_committed(keys(folder_keys))
            say(f"{dialect}: loaded in {time.perf_counter() - began:.1f} s")
            await store.list_keys(NAMESPACE, "", "/", "", 1)  # warm: namespace id, statements
            for case in CASES:
                p50, p99, reads = await measure_case(store, case, runs)
                print(
                    f"{dialect:10} {case[0]:48} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  {reads} reads"
                )
            with recorded_object_reads(store) as sent:
                await store.list_keys(NAMESPACE, "dirs/", "/", "", 3)  # bounded by the prefix
                await store.list_keys(NAMESPACE, "", "", "c04000", 3)  # no upper bound
            shown = [sent[0], sent[-1]]
            for label, plan in zip(
                ("bounded", "unbounded"), await db.direct.plans(shown), strict=True
            ):
                print(f"{dialect:10} plan ({label}): {plan}")
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--folder-keys", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    options = parser.parse_args()
    dialects = ("sqlite", "postgresql") if options.backend == "both" else (options.backend,)
    for dialect in dialects:
        asyncio.run(run_backend(dialect, options.folder_keys, options.runs))


if __name__ == "__main__":
    main()
