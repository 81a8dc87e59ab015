"""The mixed load of the scale-out benchmark: PUT, GET and DELETE of 1 KiB–8 MiB objects from
many clients spread evenly over every gateway, each answer checked against what its key last
committed.

It is the chaos benchmark's load (bench.common.load: LoadRunner, Model) with no faults:
one ``LoadRunner`` per gateway, all sharing one model of the committed state and one set of
counters. The model lets only one operation hold a key at a time, whichever gateway it goes
through, so every answer has exactly one right value: a GET must return the md5 and size of the
key's last committed PUT (or 404 after a DELETE). A key written through one gateway is as likely
to be read or deleted through another.

Steps: seed half of every size class's keys (through the first gateway), the timed load, a
drain (operations in hand finish), and an audit that reads every key that may exist once,
through the last gateway.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from bench.common.cpu import CpuMeter, CpuUse
from bench.common.load.model import KIB, MIB, ContentPool, LoadMix, Model, SizeClass
from bench.common.load.runner import LoadRunner
from bench.common.load.stats import LoadStats, PhaseLoad

WATCH_INTERVAL_S = 1.0
LOAD_PHASE = "load"

# 35 : 50 : 15 PUT : GET : DELETE (the load model's defaults). At most about 1.2 GiB committed.
MIX = LoadMix(
    (
        SizeClass("tiny", 1 * KIB, 4 * KIB, keys=300, weight=35),
        SizeClass("small", 4 * KIB, 128 * KIB, keys=300, weight=35, log_scale=True),
        SizeClass("medium", 128 * KIB, 8 * MIB, keys=150, weight=30, log_scale=True),
    )
)


@dataclass
class MixedRun:
    clients: int
    gateways: int
    duration_s: float
    stats: LoadStats
    cpu: CpuUse | None = None
    committed_objects: int = 0
    committed_bytes: int = 0

    @property
    def load(self) -> PhaseLoad | None:
        return self.stats.phase(LOAD_PHASE)

    def to_json(self) -> dict[str, Any]:
        stats = self.stats
        return {
            "clients": self.clients,
            "gateways": self.gateways,
            "duration_s": self.duration_s,
            "mix": {
                "put_get_delete": [MIX.put_weight, MIX.get_weight, MIX.delete_weight],
                "classes": [
                    {
                        "name": c.name,
                        "bytes": [c.low_bytes, c.high_bytes],
                        "keys": c.keys,
                        "weight": c.weight,
                        "log_scale": c.log_scale,
                    }
                    for c in MIX.classes
                ],
            },
            "phases": [phase.to_json() for phase in stats.phases],
            "errors": sum(stats.total_errors().values()),
            "md5_mismatches": stats.md5_mismatches,
            "read_failures": stats.read_failures,
            "problems": stats.problems,
            "cpu_during_load": self.cpu.to_json() if self.cpu else None,
            "committed_objects_at_end": self.committed_objects,
            "committed_bytes_at_end": self.committed_bytes,
        }


def _share(clients: int, gateways: int, index: int) -> int:
    """Clients of gateway ``index``: an even split, the first ones taking the remainder."""
    return clients // gateways + (1 if index < clients % gateways else 0)


async def _watch(
    seconds: float, check: Callable[[list[LoadRunner]], None], runners: list[LoadRunner]
) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        await asyncio.sleep(min(WATCH_INTERVAL_S, left))
        check(runners)


async def mixed_load(
    urls: list[str],
    clients: int,
    duration_s: float,
    seed: int,
    meter: CpuMeter,
    check_alive: Callable[[], None],
    say: Callable[[str], None],
) -> MixedRun:
    """Runs the steps; errors and wrong answers are counted in the result, not raised.
    Raises what ``check_alive`` raises (a gateway died) and what a worker died of (a bug)."""
    assert clients >= len(urls), "at least one client per gateway"
    stats = LoadStats(gateway_cpu_s=meter.gateways_cpu_s)
    run = MixedRun(clients, len(urls), duration_s, stats)
    model = Model(MIX)
    content = ContentPool(seed)

    def check(runners: list[LoadRunner]) -> None:
        check_alive()
        for runner in runners:
            runner.raise_if_failed()

    async with AsyncExitStack() as stack:
        runners = [
            await stack.enter_async_context(
                LoadRunner(url, MIX, model, content, stats, _share(clients, len(urls), i), seed + i)
            )
            for i, url in enumerate(urls)
        ]
        stats.begin("seed")
        say("mixed load: seeding half of every size class's keys through gateway 1")
        await runners[0].seed_objects(0.5)
        check(runners)
        stats.begin(LOAD_PHASE)
        shares = ", ".join(str(r.clients) for r in runners)
        say(f"mixed load: {clients} clients ({shares} per gateway) for {duration_s:g} s")
        with meter.measure("mixed load") as cpu:
            for runner in runners:
                runner.start()
            await _watch(duration_s, check, runners)
            stats.begin("drain")
        run.cpu = cpu
        say("mixed load: stopping (operations in hand finish)")
        await asyncio.gather(*(runner.stop() for runner in runners))
        stats.begin("audit")
        keys = len(model.existing_keys())
        say(f"mixed load: reading back all {keys} keys that may exist, through the last gateway")
        await runners[-1].audit()
        stats.end()
    run.committed_objects = len(model.existing_keys())
    run.committed_bytes = model.committed_bytes()
    return run
