"""The timed cases of one checkpoint: object lookups and listing pages, each call checked.

Every case first makes a few untimed calls (warm-up), then times each call on its own with
``perf_counter`` around the ``await``, so a latency at concurrency 16 includes the wait for a
read thread (SQLite) or a pooled connection (PostgreSQL), as the gateway would see it.
"""

from __future__ import annotations

import asyncio
import bisect
import gc
import math
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench.common.cpu import CpuUse
from bench.meta_scale.load import NAMESPACE, SHARDS, listing_prefixes, object_key
from diststorage.meta import MetadataStore

PAGE_KEYS = 1000
LOOKUP_CONCURRENCIES = (1, 16)
WARMUP_SHARE = 0.1
MAX_WARMUP_CALLS = 200


@dataclass
class Case:
    """The latencies of one kind of call at one checkpoint."""

    name: str
    concurrency: int
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    keys_listed: int = 0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    @property
    def calls_per_s(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds > 0 else math.nan

    @property
    def keys_per_page(self) -> float:
        return self.keys_listed / len(self.latencies_ms) if self.latencies_ms else math.nan

    def to_json(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "case": self.name,
            "concurrency": self.concurrency,
            "calls": len(self.latencies_ms),
            "p50_ms": round(self.percentile_ms(0.5), 3),
            "p99_ms": round(self.percentile_ms(0.99), 3),
            "max_ms": round(max(self.latencies_ms, default=math.nan), 3),
            "mean_ms": round(sum(self.latencies_ms) / max(1, len(self.latencies_ms)), 3),
            "calls_per_s": round(self.calls_per_s, 1),
        }
        if self.keys_listed:
            figures["keys_per_page"] = round(self.keys_per_page, 1)
        return figures


async def _timed(
    case: Case, call: Callable[[int], Awaitable[None]], count: int, warmup: int
) -> Case:
    """Calls ``call(0 .. warmup + count - 1)``, ``case.concurrency`` at a time; times the last
    ``count`` of them."""
    for i in range(warmup):
        await call(i)
    gc.collect()
    numbers = iter(range(warmup, warmup + count))

    async def worker() -> None:
        for i in numbers:
            started = time.perf_counter()
            await call(i)
            case.latencies_ms.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(case.concurrency):
            group.create_task(worker())
    case.seconds = time.perf_counter() - began
    return case


@dataclass(frozen=True)
class CpuShare:
    """Where the machine's CPU went while a checkpoint was measured, in % of one core."""

    machine_pct: float
    bench_pct: float
    postgres_pct: float

    @property
    def others_pct(self) -> float:
        return max(0.0, self.machine_pct - self.bench_pct - self.postgres_pct)

    @classmethod
    def of(cls, use: CpuUse) -> CpuShare:
        """The share of one core each side used over ``use``'s block (a meter with PostgreSQL
        counted, this process as the client)."""
        per_core = 100 / max(1e-9, use.wall_s)
        return cls(use.machine_s * per_core, use.client_s * per_core, use.postgres_s * per_core)

    def to_json(self) -> dict[str, float]:
        return {
            "machine_pct": round(self.machine_pct, 1),
            "bench_pct": round(self.bench_pct, 1),
            "postgres_pct": round(self.postgres_pct, 1),
            "others_pct": round(self.others_pct, 1),
        }


class Checkpoint:
    """Measures a store that holds objects ``0 .. loaded - 1`` (keys from ``object_key``)."""

    def __init__(self, store: MetadataStore, loaded: int, seed: int) -> None:
        self._store = store
        self._loaded = loaded
        self._rng = random.Random(seed * 1_000_003 + loaded)
        self.failures: list[str] = []

    def _fail(self, message: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(f"{self._loaded:,} objects: {message}")

    async def lookups(self, count: int) -> list[Case]:
        cases: list[Case] = []
        warmup = min(MAX_WARMUP_CALLS, int(count * WARMUP_SHARE))
        calls = {"get_layout": self._layout, "get_info": self._info}
        for name, call in calls.items():
            for concurrency in LOOKUP_CONCURRENCIES:
                keys = [
                    object_key(self._rng.randrange(self._loaded)) for _ in range(warmup + count)
                ]

                async def lookup(
                    i: int, call: Callable[[str], Awaitable[None]] = call, keys: list[str] = keys
                ) -> None:
                    await call(keys[i])

                cases.append(await _timed(Case(name, concurrency), lookup, count, warmup))
        return cases

    async def _layout(self, key: str) -> None:
        layout = await self._store.get_layout(NAMESPACE, key)
        if layout.info.key != key or len(layout.chunks) != SHARDS:
            self._fail(f"get_layout({key!r}) gave {layout.info.key!r}, {len(layout.chunks)} chunks")

    async def _info(self, key: str) -> None:
        info = await self._store.get_info(NAMESPACE, key)
        if info.key != key:
            self._fail(f"get_info({key!r}) gave {info.key!r}")

    async def listings(self, pages: int) -> list[Case]:
        """A 1,000-key page from random start points, then the first page of random prefixes."""
        ordered = sorted(object_key(n) for n in range(self._loaded))
        warmup = min(MAX_WARMUP_CALLS, max(1, int(pages * WARMUP_SHARE)))
        starts = [
            self._rng.randrange(max(1, len(ordered) - PAGE_KEYS + 1)) for _ in range(warmup + pages)
        ]
        page = Case("list 1,000 keys", 1)

        async def list_from(i: int) -> None:
            start = starts[i]
            after = ordered[start - 1] if start else ""
            found = await self._store.list_objects(NAMESPACE, "", after, PAGE_KEYS)
            expected = ordered[start : start + PAGE_KEYS]
            if [o.key for o in found.objects] != expected:
                self._fail(f"listing after {after!r}: {len(found.objects)} keys, not as loaded")
            if i >= warmup:
                page.keys_listed += len(found.objects)

        await _timed(page, list_from, pages, warmup)
        prefixes = [self._rng.choice(listing_prefixes()) for _ in range(warmup + pages)]
        by_prefix = Case("list prefix, first page", 1)

        async def list_prefix(i: int) -> None:
            prefix = prefixes[i]
            first = bisect.bisect_left(ordered, prefix)
            expected = [k for k in ordered[first : first + PAGE_KEYS] if k.startswith(prefix)]
            found = await self._store.list_objects(NAMESPACE, prefix, "", PAGE_KEYS)
            if [o.key for o in found.objects] != expected:
                self._fail(
                    f"listing of prefix {prefix!r}: {len(found.objects)} keys, not as loaded"
                )
            if i >= warmup:
                by_prefix.keys_listed += len(found.objects)

        await _timed(by_prefix, list_prefix, pages, warmup)
        return [page, by_prefix]
