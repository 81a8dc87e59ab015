"""Small-object operations: 4 KiB PUT and GET at a fixed concurrency over keep-alive connections.

PUT writes distinct keys; GET reads back the keys the PUT case just wrote, cycling through them,
and checks every body byte for byte. A short untimed warm-up opens the connections first.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

OBJECT_BYTES = 4096
T = TypeVar("T")


@dataclass
class OpsResult:
    op: str
    concurrency: int
    ops: int
    errors: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    first_error: str = ""

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "concurrency": self.concurrency,
            "object_bytes": OBJECT_BYTES,
            "ops": self.ops,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "ops_per_s": round(self.ops_per_s, 1),
            "p50_ms": round(self.percentile_ms(0.50), 3),
            "p99_ms": round(self.percentile_ms(0.99), 3),
            "max_ms": round(max(self.latencies_ms, default=math.nan), 3),
            "first_error": self.first_error,
        }


def payload(base: bytes, index: int) -> bytes:
    """The body of object ``index``: distinct per index, so a GET proves it read the right one."""
    return index.to_bytes(8, "big") + base[8:OBJECT_BYTES]


OneOp = Callable[[aiohttp.ClientSession, int], Awaitable[str | None]]


async def _drive(
    session: aiohttp.ClientSession,
    concurrency: int,
    duration_s: float,
    max_ops: int,
    one_op: OneOp,
) -> tuple[int, list[float], int, str]:
    """Runs ``one_op(session, i)`` for i = 0, 1, … from ``concurrency`` workers until the time
    budget or ``max_ops`` is spent. Returns (ops started, latencies of successes, errors,
    first error)."""
    latencies: list[float] = []
    errors = 0
    first_error = ""
    next_index = 0
    deadline = time.perf_counter() + duration_s

    async def worker() -> None:
        nonlocal next_index, errors, first_error
        while next_index < max_ops and time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                problem = await one_op(session, index)
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            elapsed_ms = (time.perf_counter() - started) * 1000
            if problem is None:
                latencies.append(elapsed_ms)
            else:
                errors += 1
                first_error = first_error or problem

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return next_index, latencies, errors, first_error


def _session(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))


@dataclass(frozen=True)
class Budget:
    """When a run of operations stops: after ``seconds`` or ``ops`` operations, first come."""

    seconds: float
    ops: int


async def put_case(
    urls: Sequence[str],
    base: bytes,
    prefix: str,
    concurrency: int,
    timed: Budget,
    warmup: Budget,
    measured: Callable[[], AbstractContextManager[T]],
) -> tuple[OpsResult, list[int], T]:
    """PUTs distinct 4 KiB objects ``{prefix}-{i}``, object ``i`` through gateway ``i mod n``,
    after an untimed warm-up under another prefix. Returns the result, the indexes written and
    what ``measured`` (entered around the timed part only) yielded."""
    written: list[int] = []

    def make_op(name: str, record: bool) -> OneOp:
        async def one_op(session: aiohttp.ClientSession, index: int) -> str | None:
            url = urls[index % len(urls)]
            async with session.put(
                f"{url}/{name}-{index:08d}",
                data=payload(base, index),
                headers={"Content-Type": "application/octet-stream"},
            ) as response:
                await response.read()
                if response.status != 201:
                    return f"PUT HTTP {response.status} via {url}"
            if record:
                written.append(index)
            return None

        return one_op

    async with _session(concurrency) as session:
        await _drive(
            session, concurrency, warmup.seconds, warmup.ops, make_op(f"{prefix}-warm", False)
        )
        with measured() as measure:
            started = time.perf_counter()
            ops, latencies, errors, first = await _drive(
                session, concurrency, timed.seconds, timed.ops, make_op(prefix, True)
            )
            seconds = time.perf_counter() - started
    written.sort()
    result = OpsResult("PUT", concurrency, ops - errors, errors, seconds, latencies, first)
    return result, written, measure


async def get_case(
    urls: Sequence[str],
    base: bytes,
    prefix: str,
    indexes: list[int],
    concurrency: int,
    timed: Budget,
    warmup: Budget,
    measured: Callable[[], AbstractContextManager[T]],
) -> tuple[OpsResult, T]:
    """GETs, cycling through, the objects ``put_case`` wrote, object ``i`` through gateway
    ``(i + 1) mod n`` (with several gateways, never the one that wrote it); every body is
    compared byte for byte."""
    if not indexes:
        with measured() as measure:
            pass
        return OpsResult("GET", concurrency, 0, 1, 0.0, [], "no keys were written"), measure

    async def one_op(session: aiohttp.ClientSession, i: int) -> str | None:
        index = indexes[i % len(indexes)]
        url = urls[(index + 1) % len(urls)]
        async with session.get(f"{url}/{prefix}-{index:08d}") as response:
            body = await response.read()
            if response.status != 200:
                return f"GET HTTP {response.status} via {url}"
        if body != payload(base, index):
            return f"GET {prefix}-{index:08d} via {url}: body differs from what was written"
        return None

    async with _session(concurrency) as session:
        await _drive(session, concurrency, warmup.seconds, warmup.ops, one_op)
        with measured() as measure:
            started = time.perf_counter()
            ops, latencies, errors, first = await _drive(
                session, concurrency, timed.seconds, timed.ops, one_op
            )
            seconds = time.perf_counter() - started
    return OpsResult("GET", concurrency, ops - errors, errors, seconds, latencies, first), measure
