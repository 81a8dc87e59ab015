"""Faults of the services around the nodes: a gateway killed and started again, the PostgreSQL
server restarted.

Run beside the node faults (``faults.py``), on their own schedule:

- gateway: one of the gateways past the first is killed with SIGKILL, held down for a while,
  and started again on the same ports; never more than one at once. The first gateway is
  never touched: the run's control requests (``/_/repair``, ``/_/nodes``) and the audit go
  through it. The load spreads over every gateway that is up (``live_urls``), as a client
  behind a load balancer would, and an operation cut off by its gateway's death is tried once
  more on another one (``killed_since``), as S3 clients retry a dropped connection.
- database: the run's own PostgreSQL server is stopped (fast: every connection is cut) and
  started again. Reads must ride it out (the metadata store tries a read again until its
  deadline); writes in flight may fail with 503 and leave nothing behind.

Neither costs redundancy, so neither counts against the node budget.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from diststorage.local import LocalCluster
from diststorage.testing.private_postgres import PrivatePostgres

TICK_S = 0.25
GATEWAY_BACK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServicePlan:
    gateway_hold_s: tuple[float, float]
    gateway_gap_s: tuple[float, float]
    database_gap_s: tuple[float, float]


@dataclass
class ServiceFaults:
    cluster: LocalCluster
    postgres: PrivatePostgres | None
    plan: ServicePlan
    rng: random.Random
    clock: Callable[[], float]
    say: Callable[[str], None]
    events: list[str] = field(default_factory=list)
    gateway_kills: int = 0
    database_restarts: int = 0
    database_away_s: list[float] = field(default_factory=list)
    late_gateways: int = 0
    _down: int | None = None
    _kills_of: dict[str, int] = field(default_factory=dict)

    @property
    def urls(self) -> list[str]:
        return self.cluster.urls

    def live_urls(self) -> list[str]:
        """The gateways the load may use now."""
        return [url for i, url in enumerate(self.urls) if i != self._down]

    def kills_of(self, url: str) -> int:
        """How often the gateway at ``url`` has been killed: an operation that sees it change
        was cut off by a kill."""
        return self._kills_of.get(url, 0)

    def expected_down(self, index: int) -> bool:
        return index == self._down

    async def run(self, duration_s: float) -> None:
        """Gateway kills and database restarts for ``duration_s``, then every gateway up."""
        deadline = time.monotonic() + duration_s
        tasks = []
        if len(self.urls) > 1:
            tasks.append(asyncio.create_task(self._gateways(deadline)))
        if self.postgres is not None:
            tasks.append(asyncio.create_task(self._database(deadline, self.postgres)))
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self._down is not None:
                await self._start_gateway(self._down)

    async def _gateways(self, deadline: float) -> None:
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.rng.uniform(*self.plan.gateway_gap_s)))
            if time.monotonic() >= deadline:
                return
            index = self.rng.randrange(1, len(self.urls))
            hold_s = self.rng.uniform(*self.plan.gateway_hold_s)
            self._down = index
            self._kills_of[self.urls[index]] = self.kills_of(self.urls[index]) + 1
            await asyncio.to_thread(self.cluster.kill_gateway, index)
            self.gateway_kills += 1
            self._event(f"kill gateway{index} for {hold_s:.1f} s")
            await asyncio.sleep(hold_s)
            await self._start_gateway(index)

    async def _start_gateway(self, index: int) -> None:
        started = time.monotonic()
        await asyncio.to_thread(self.cluster.start_gateway, index)
        if await _answers(self.urls[index], GATEWAY_BACK_TIMEOUT_S):
            self._event(f"gateway{index} back after {time.monotonic() - started:.1f} s")
        else:
            self.late_gateways += 1
            self._event(f"gateway{index} NOT BACK after {GATEWAY_BACK_TIMEOUT_S:g} s")
        self._down = None

    async def _database(self, deadline: float, postgres: PrivatePostgres) -> None:
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, self.rng.uniform(*self.plan.database_gap_s)))
            if time.monotonic() >= deadline:
                return
            self._event("restart the database")
            away_s = await asyncio.to_thread(postgres.restart)
            self.database_restarts += 1
            self.database_away_s.append(away_s)
            self._event(f"database back after {away_s:.1f} s")

    def _event(self, text: str) -> None:
        line = f"t={self.clock():7.1f}s  {text}"
        self.events.append(line)
        self.say(f"fault: {line}")


async def _answers(url: str, timeout_s: float) -> bool:
    """The gateway answers ``/_/health`` (unauthenticated) within ``timeout_s``: 200, or 503
    while too few nodes are writable, which is still a gateway serving."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            try:
                timeout = aiohttp.ClientTimeout(total=2)
                async with session.get(f"{url}/_/health", timeout=timeout) as answer:
                    if answer.status in (200, 503):
                        return True
            except (aiohttp.ClientError, OSError, TimeoutError):
                pass
            await asyncio.sleep(TICK_S)
    return False
