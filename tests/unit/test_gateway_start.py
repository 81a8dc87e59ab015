"""A gateway's start (gateway/app.py ``Gateway.start``) against a metadata database that is
briefly out of reach: the build is tried again, what it built closed first, within
``DATABASE_START_WAIT_S``; anything else ends the start at once. The build itself is faked
here; tests/integration/test_gateway_waits_for_database.py starts a real gateway against a
real PostgreSQL that comes up late."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from diststorage.core.errors import Unavailable
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.app import (
    DATABASE_START_FIRST_PAUSE_S,
    DATABASE_START_LONGEST_PAUSE_S,
    DATABASE_START_WAIT_S,
    Gateway,
    MigrationFailed,
)
from diststorage.testing import FakeClock


class _Builds:
    """A build that fails with the given errors, one per try, then succeeds; each try
    enters a part, so that a test sees what was closed."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.tries = 0
        self.closed = 0

    async def __call__(self, parts: contextlib.AsyncExitStack) -> None:
        self.tries += 1

        async def close() -> None:
            self.closed += 1

        parts.push_async_callback(close)
        if self.errors:
            raise self.errors.pop(0)


def _gateway(tmp_path: Path, build: _Builds, clock: FakeClock) -> Gateway:
    gateway = Gateway(GatewaySettings(data_dir=tmp_path, insecure_cluster=True), clock=clock)
    gateway._build = build  # type: ignore[method-assign]
    return gateway


async def test_a_database_out_of_reach_at_start_is_waited_for(tmp_path: Path) -> None:
    clock = FakeClock()
    build = _Builds(
        MigrationFailed("schema migration failed:\nconnection refused"),
        Unavailable("metadata database error: InternalError"),
        Unavailable("the metadata database did not answer in time"),
    )
    await _gateway(tmp_path, build, clock)._build_waiting_for_database()
    assert build.tries == 4
    assert build.closed == 3, "each failed try closed what it had built"
    first = DATABASE_START_FIRST_PAUSE_S
    assert clock.sleeps == [first, 2 * first, 4 * first]


async def test_a_database_that_stays_away_fails_the_start_after_the_wait(tmp_path: Path) -> None:
    clock = FakeClock()
    build = _Builds(*[Unavailable("metadata database error: OSError") for _ in range(100)])
    with pytest.raises(Unavailable):
        await _gateway(tmp_path, build, clock)._build_waiting_for_database()
    assert clock.now >= DATABASE_START_WAIT_S - DATABASE_START_LONGEST_PAUSE_S
    assert clock.now <= DATABASE_START_WAIT_S
    assert max(clock.sleeps) == DATABASE_START_LONGEST_PAUSE_S
    assert build.closed == build.tries


async def test_any_other_failure_ends_the_start_at_once(tmp_path: Path) -> None:
    clock = FakeClock()
    build = _Builds(RuntimeError("no cluster credential"))
    with pytest.raises(RuntimeError, match="no cluster credential"):
        await _gateway(tmp_path, build, clock)._build_waiting_for_database()
    assert build.tries == 1 and clock.sleeps == []
