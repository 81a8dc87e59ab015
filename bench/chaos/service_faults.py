"""Faults of the services around the nodes: a gateway killed and started again, the PostgreSQL
server restarted.

Run beside the node faults (``faults.py``), on their own schedule:

- gateway: any gateway, the first included, is killed with SIGKILL, held down for a while,
  and started again on the same ports; never more than one at once, so one is always up.
  The load, the run's control requests (``control.py``) and the audit go to the gateways
  that are up (``live_urls``), as a client behind a load balancer would, and a GET cut off
  by its gateway's death is tried once more on another one (``kills_of``), as S3 clients
  retry a dropped connection. A gateway started again rejoins them once it answers and has
  heard from every node no fault holds, as a load balancer's readiness check would let it
  in: until then it sees those nodes as down.
- database: the run's own PostgreSQL server is stopped (fast: every connection is cut) and
  started again. Reads must ride it out (the metadata store tries a read again until its
  deadline); writes in flight may fail with 503 and leave nothing behind.

Neither costs redundancy, so neither counts against the node budget.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from bench.chaos.control import Control
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
    # The addresses of the nodes no fault holds now (a restarted gateway must see them up).
    healthy_nodes: Callable[[], set[str]] = set
    session: aiohttp.ClientSession | None = None
    events: list[str] = field(default_factory=list)
    gateway_kills: int = 0
    kills_by_gateway: Counter[int] = field(default_factory=Counter)
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
            index = self.rng.randrange(len(self.urls))
            hold_s = self.rng.uniform(*self.plan.gateway_hold_s)
            self._down = index
            self._kills_of[self.urls[index]] = self.kills_of(self.urls[index]) + 1
            await asyncio.to_thread(self.cluster.kill_gateway, index)
            self.gateway_kills += 1
            self.kills_by_gateway[index] += 1
            self._event(f"kill gateway{index} for {hold_s:.1f} s")
            await asyncio.sleep(hold_s)
            await self._start_gateway(index)

    async def _start_gateway(self, index: int) -> None:
        started = time.monotonic()
        deadline = started + GATEWAY_BACK_TIMEOUT_S
        url = self.urls[index]
        await asyncio.to_thread(self.cluster.start_gateway, index)
        if await _answers(url, deadline) and await self._sees_nodes(url, deadline):
            self._event(f"gateway{index} back after {time.monotonic() - started:.1f} s")
        else:
            self.late_gateways += 1
            self._event(f"gateway{index} NOT BACK after {GATEWAY_BACK_TIMEOUT_S:g} s")
        self._down = None

    async def _sees_nodes(self, url: str, deadline: float) -> bool:
        """The gateway at ``url`` calls every node no fault holds up."""
        if self.session is None:
            return True
        control = Control(self.session, lambda: [url])
        while time.monotonic() < deadline:
            views = (await control.node_views())[0]
            if views is not None and all(
                (views.get(address) or {}).get("state") == "up" for address in self.healthy_nodes()
            ):
                return True
            await asyncio.sleep(TICK_S)
        return False

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


async def _answers(url: str, deadline: float) -> bool:
    """The gateway answers ``/_/health`` (unauthenticated) before ``deadline`` (monotonic):
    200, or 503 while too few nodes are writable, which is still a gateway serving."""
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
