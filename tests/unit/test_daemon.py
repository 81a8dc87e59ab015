"""What both daemons share: a start that fails half-way closes what it built, in reverse, and
``serve`` stops a daemon on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal

import pytest

from diststorage.core.daemon import build_or_unwind, serve


class Part:
    def __init__(self, name: str, closed: list[str]) -> None:
        self.name = name
        self._closed = closed

    async def close(self) -> None:
        self._closed.append(self.name)


async def test_a_failed_build_closes_exactly_what_it_built_in_reverse() -> None:
    closed: list[str] = []

    async def build(parts: contextlib.AsyncExitStack) -> None:
        for name in ("store", "clients"):
            parts.push_async_callback(Part(name, closed).close)
        raise OSError("address in use")

    with pytest.raises(OSError, match="address in use"):
        await build_or_unwind(contextlib.AsyncExitStack(), build)
    assert closed == ["clients", "store"]


class FakeDaemon:
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def start(self) -> None:
        self.calls.append("start")

    async def stop(self) -> None:
        self.calls.append("stop")


async def test_serve_stops_the_daemon_on_sigterm_and_restores_the_handler() -> None:
    daemon, ready = FakeDaemon(), asyncio.Event()
    serving = asyncio.create_task(serve(daemon, ready))
    await ready.wait()
    await asyncio.sleep(0)  # serve installs its handlers right after ready
    assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL

    os.kill(os.getpid(), signal.SIGTERM)

    async with asyncio.timeout(5):
        await serving
    assert daemon.calls == ["start", "stop"]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
