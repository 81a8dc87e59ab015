"""The gateway's repair progress (``GET /_/repair``) and liveness (``GET /_/health``).

``RepairMonitor`` samples ``/_/repair`` for the whole run, so the report can say how far below
target the cluster fell during the chaos and how fast it came back. A gateway without the
endpoint is caught up front by ``check_repair_endpoint`` rather than polled forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

SAMPLE_INTERVAL_S = 0.5
REQUEST_TIMEOUT_S = 5.0
GIVE_UP_AFTER_ERRORS = 20
REPAIR_STATES = frozenset({"idle", "busy", "throttled"})


class RepairUnavailable(Exception):
    """The gateway has no usable ``GET /_/repair`` (missing, or not the agreed shape)."""


@dataclass(frozen=True)
class RepairStatus:
    state: str
    stripes_below_target: int
    bytes_repaired: int
    rate_bytes_per_s: float
    eta_s: float | None

    @classmethod
    def parse(cls, body: Any) -> RepairStatus:
        """Raises ``RepairUnavailable`` naming what is missing or malformed."""
        if not isinstance(body, dict):
            raise RepairUnavailable(f"GET /_/repair answered {body!r}, not a JSON object")
        try:
            status = cls(
                state=str(body["state"]),
                stripes_below_target=int(body["stripes_below_target"]),
                bytes_repaired=int(body["bytes_repaired"]),
                rate_bytes_per_s=float(body["rate_bytes_per_s"]),
                eta_s=None if body.get("eta_s") is None else float(body["eta_s"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise RepairUnavailable(
                f"GET /_/repair answered {body!r}: bad or missing {exc}"
            ) from exc
        if status.state not in REPAIR_STATES:
            raise RepairUnavailable(f"GET /_/repair: unknown state {status.state!r}")
        return status

    @property
    def working(self) -> bool:
        return self.state in ("busy", "throttled")


async def fetch_repair(session: aiohttp.ClientSession, url: str) -> RepairStatus:
    return RepairStatus.parse(await _repair_body(session, url))


async def _repair_body(session: aiohttp.ClientSession, url: str) -> Any:
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with session.get(f"{url}/_/repair", timeout=timeout) as answer:
        if answer.status != 200:
            text = (await answer.text())[:300]
            raise RepairUnavailable(f"GET /_/repair answered HTTP {answer.status}: {text}")
        return await answer.json(content_type=None)


async def fetch_leader_repair(session: aiohttp.ClientSession, urls: list[str]) -> RepairStatus:
    """The repair status of the gateway that leads (repair runs there, and a gateway's state
    and byte counters are its own); the first gateway's while none answers as leader."""
    first: Any = None
    failure: Exception | None = None
    for url in urls:
        try:
            body = await _repair_body(session, url)
        except (aiohttp.ClientError, OSError, ValueError, RepairUnavailable) as exc:
            failure = failure or exc
            continue
        if isinstance(body, dict) and body.get("this_gateway_leads"):
            return RepairStatus.parse(body)
        first = body if first is None else first
    if first is None:
        assert failure is not None
        raise failure
    return RepairStatus.parse(first)


async def check_repair_endpoint(session: aiohttp.ClientSession, url: str) -> RepairStatus:
    """The first repair status; raises ``RepairUnavailable`` with the reason if there is none."""
    try:
        return await fetch_repair(session, url)
    except (aiohttp.ClientError, OSError, ValueError) as exc:
        raise RepairUnavailable(f"GET /_/repair failed: {type(exc).__name__}: {exc}") from exc


async def live_nodes(session: aiohttp.ClientSession, url: str) -> int:
    """``live_nodes`` from ``/_/health`` (answered with 200 or 503); -1 if it cannot be read."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    try:
        async with session.get(f"{url}/_/health", timeout=timeout) as answer:
            body = await answer.json(content_type=None)
    except (aiohttp.ClientError, OSError, ValueError):
        return -1
    return int(body.get("live_nodes", -1)) if isinstance(body, dict) else -1


async def wait_live_nodes(
    session: aiohttp.ClientSession, url: str, count: int, timeout_s: float
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await live_nodes(session, url) >= count:
            return True
        await asyncio.sleep(0.25)
    return False


@dataclass(frozen=True)
class RepairSample:
    t_s: float
    status: RepairStatus | None
    error: str = ""
    foreground_bytes: int = 0  # bytes the load had moved by t_s


@dataclass
class RepairMonitor:
    """Samples ``/_/repair`` every ``interval_s`` until ``stop``; ``clock`` gives run seconds,
    ``foreground_bytes`` the bytes the load has moved so far (to tell its rate while repair is
    busy)."""

    session: aiohttp.ClientSession
    urls: list[str]
    clock: Callable[[], float]
    foreground_bytes: Callable[[], int]
    interval_s: float = SAMPLE_INTERVAL_S
    samples: list[RepairSample] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _sampled: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def run(self) -> None:
        while not self._stop.is_set():
            await self._sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.interval_s)

    def stop(self) -> None:
        self._stop.set()

    async def _sample(self) -> None:
        t_s, moved = self.clock(), self.foreground_bytes()
        try:
            status = await fetch_leader_repair(self.session, self.urls)
            sample = RepairSample(t_s, status, "", moved)
        except (aiohttp.ClientError, OSError, ValueError, RepairUnavailable) as exc:
            sample = RepairSample(t_s, None, f"{type(exc).__name__}: {exc}"[:200], moved)
        self.samples.append(sample)
        async with self._sampled:
            self._sampled.notify_all()

    async def wait_until_repaired(self, since_s: float, timeout_s: float) -> RepairSample | None:
        """The first sample taken at or after ``since_s`` with no stripe below target; None if
        none comes within ``timeout_s``, or if the last ``GIVE_UP_AFTER_ERRORS`` samples all
        failed."""
        return await self._first(_repaired, since_s, timeout_s)

    async def wait_until_working(self, since_s: float, timeout_s: float) -> RepairSample | None:
        """The first sample at or after ``since_s`` with repair busy or throttled (same terms)."""
        return await self._first(
            lambda s: s.status is not None and s.status.working, since_s, timeout_s
        )

    async def _first(
        self, wanted: Callable[[RepairSample], bool], since_s: float, timeout_s: float
    ) -> RepairSample | None:
        deadline = time.monotonic() + timeout_s
        checked = 0
        while True:
            for sample in self.samples[checked:]:
                if sample.t_s >= since_s and wanted(sample):
                    return sample
            checked = len(self.samples)
            recent = self.samples[-GIVE_UP_AFTER_ERRORS:]
            if len(recent) == GIVE_UP_AFTER_ERRORS and all(s.status is None for s in recent):
                return None  # /_/repair keeps failing: say so rather than wait out the timeout
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            async with self._sampled:
                try:
                    await asyncio.wait_for(self._sampled.wait(), left)
                except TimeoutError:
                    return None

    def last_error(self) -> str:
        return next((s.error for s in reversed(self.samples) if s.status is None), "")


def _repaired(sample: RepairSample) -> bool:
    return sample.status is not None and sample.status.stripes_below_target == 0


def status_at(samples: list[RepairSample], t_s: float) -> RepairStatus | None:
    """The last good sample taken at or before ``t_s`` (the first good one if none is)."""
    good = [s for s in samples if s.status is not None]
    before = [s for s in good if s.t_s <= t_s]
    chosen = before[-1] if before else (good[0] if good else None)
    return None if chosen is None else chosen.status


def statuses_between(
    samples: list[RepairSample], start_s: float, end_s: float
) -> list[RepairStatus]:
    return [s.status for s in samples if s.status is not None and start_s <= s.t_s <= end_s]


def busy_foreground(samples: list[RepairSample], start_s: float, end_s: float) -> tuple[int, float]:
    """(bytes the load moved, seconds) over the intervals between samples in
    [``start_s``, ``end_s``] that began with repair busy or throttled."""
    inside = [s for s in samples if start_s <= s.t_s <= end_s]
    moved, seconds = 0, 0.0
    for first, second in itertools.pairwise(inside):
        if first.status is not None and first.status.working:
            moved += second.foreground_bytes - first.foreground_bytes
            seconds += second.t_s - first.t_s
    return moved, seconds
