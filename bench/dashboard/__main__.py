"""What an open dashboard costs the gateway, on one real 6-node ec:4+2 cluster on loopback:

    uv run python -m bench.dashboard [--quick] [--rounds N] [--json-out FILE]

Alternating rounds, each with 0 and then 5 dashboard tabs (the order flips every round), each
tab a signed-in session holding the Overview's live stream open (``/_/ui/live``, every panel
of the page). In each condition it measures the gateway process's CPU while the cluster is
otherwise idle (what the dashboard alone costs), then 4 KiB GETs at concurrency 16 with the
gateway's CPU during them. Prints each round, the medians per condition, and the noise (the
spread of GET ops/s across the rounds of one condition), so that "5 tabs change GET ops/s by
less than noise" can be read off the same run. Exits non-zero only if an operation failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from bench.common.ops import OBJECT_BYTES, Budget, get_case, put_case
from diststorage.core.credentials import Credentials
from diststorage.testing import running_cluster

TABS = 5
CONCURRENCY = 16
OBJECTS = 2_000
UI = "/_/ui"
OVERVIEW_PANELS = "health,durability,repair,throughput,capacity,heatmap"
# A tab's stream gets its first snapshot at once; give every tab time to be in steady state.
SETTLE_S = 3.0


@dataclass
class Condition:
    tabs: int
    idle_cpu_pct: list[float] = field(default_factory=list)
    load_cpu_pct: list[float] = field(default_factory=list)
    get_ops_per_s: list[float] = field(default_factory=list)
    get_p99_ms: list[float] = field(default_factory=list)
    events_received: int = 0

    def summary(self) -> dict[str, Any]:
        ops = self.get_ops_per_s
        return {
            "tabs": self.tabs,
            "rounds": len(ops),
            "idle_gateway_cpu_pct_median": round(statistics.median(self.idle_cpu_pct), 2),
            "load_gateway_cpu_pct_median": round(statistics.median(self.load_cpu_pct), 1),
            "get_ops_per_s_median": round(statistics.median(ops), 1),
            "get_ops_per_s_spread": round(max(ops) - min(ops), 1),
            "get_p99_ms_median": round(statistics.median(self.get_p99_ms), 2),
            "sse_events_received": self.events_received,
        }


class GatewayCpu:
    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)

    def seconds(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    @contextlib.contextmanager
    def measured(self) -> Iterator[list[float]]:
        """Yields a list that holds, after the block, the gateway's CPU % of one core."""
        result: list[float] = []
        cpu0, wall0 = self.seconds(), time.perf_counter()
        yield result
        result.append(100.0 * (self.seconds() - cpu0) / (time.perf_counter() - wall0))


async def _tab(
    url: str, credentials: Credentials, counter: list[int], opened: asyncio.Event
) -> None:
    """One browser tab: sign in, then hold the Overview's live stream open and read it."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(url, cookie_jar=jar) as session:
        form = {
            "access_key_id": credentials.access_key_id,
            "secret_access_key": credentials.secret_access_key,
        }
        async with session.post(UI + "/login", data=form, allow_redirects=False) as response:
            if response.status != 303:
                raise RuntimeError(f"dashboard login answered {response.status}")
        async with session.get(UI + "/") as response:
            await response.read()
        async with session.get(f"{UI}/live?panels={OVERVIEW_PANELS}") as response:
            if response.status != 200:
                raise RuntimeError(f"the live stream answered {response.status}")
            opened.set()
            async for line in response.content:
                if line.startswith(b"event:"):
                    counter[0] += 1


@contextlib.asynccontextmanager
async def tabs(url: str, credentials: Credentials, count: int) -> AsyncIterator[list[int]]:
    counter = [0]
    opened = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(_tab(url, credentials, counter, o)) for o in opened]
    try:
        if opened:
            await asyncio.wait_for(asyncio.gather(*(o.wait() for o in opened)), 30)
        await asyncio.sleep(SETTLE_S)
        yield counter
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def run(
    url: str, credentials: Credentials, pid: int, args: argparse.Namespace
) -> dict[str, Any]:
    cpu = GatewayCpu(pid)
    base = bytes(range(256)) * (OBJECT_BYTES // 256)
    warm = Budget(1.0, 200)
    _, written, _ = await put_case(
        [url], base, "dash", CONCURRENCY, Budget(60.0, OBJECTS), warm, contextlib.nullcontext
    )
    conditions = {0: Condition(0), TABS: Condition(TABS)}
    for round_index in range(args.rounds):
        order = (0, TABS) if round_index % 2 == 0 else (TABS, 0)
        for count in order:
            condition = conditions[count]
            async with tabs(url, credentials, count) as received:
                with cpu.measured() as idle:
                    await asyncio.sleep(args.idle_s)
                result, load = await get_case(
                    [url], base, "dash", written, CONCURRENCY,
                    Budget(args.ops_s, 10**9), warm, cpu.measured,
                )  # fmt: skip
                condition.events_received += received[0]
            if result.errors:
                raise RuntimeError(f"GET failed: {result.first_error}")
            condition.idle_cpu_pct.append(idle[0])
            condition.load_cpu_pct.append(load[0])
            condition.get_ops_per_s.append(result.ops_per_s)
            condition.get_p99_ms.append(result.percentile_ms(0.99))
            print(
                f"round {round_index + 1} tabs={count}: idle gateway CPU {idle[0]:.2f} %, "
                f"GET {result.ops_per_s:.0f} ops/s (p99 {result.percentile_ms(0.99):.1f} ms), "
                f"gateway CPU under load {load[0]:.0f} %",
                flush=True,
            )
    none, five = conditions[0].summary(), conditions[TABS].summary()
    return {
        "object_bytes": OBJECT_BYTES,
        "concurrency": CONCURRENCY,
        "without_tabs": none,
        "with_tabs": five,
        "dashboard_idle_cpu_pct": round(
            five["idle_gateway_cpu_pct_median"] - none["idle_gateway_cpu_pct_median"], 2
        ),
        "get_ops_per_s_change": round(
            five["get_ops_per_s_median"] - none["get_ops_per_s_median"], 1
        ),
        "get_ops_per_s_noise": max(none["get_ops_per_s_spread"], five["get_ops_per_s_spread"]),
        "load_average": [round(v, 1) for v in psutil.getloadavg()],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 6 s idle, 6 s GETs")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.idle_s = 6.0 if args.quick else 15.0
    args.ops_s = 6.0 if args.quick else 12.0
    with (
        tempfile.TemporaryDirectory(prefix="bench-dashboard-") as folder,
        running_cluster(Path(folder), nodes=6, gateway_args=["--anonymous"]) as cluster,
    ):
        report = asyncio.run(run(cluster.url, cluster.root, cluster.gateway_pids()[0], args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
