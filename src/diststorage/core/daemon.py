"""What every daemon's process does around its own parts: logging, allocator, event loop and
the one shutdown signal.

A daemon (gateway, node) is an object with ``async start()`` and ``async stop()``. ``start``
builds and starts its parts and, if it fails half-way, tears down what it built before it
raises; ``stop`` tears down in the reverse order of building. ``serve`` runs one until SIGTERM
or SIGINT; ``run_daemon`` is the blocking entry point of the command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from typing import Protocol

from diststorage.core.logs import LogFormat, configure_logging
from diststorage.core.memory import tune_allocator

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Daemon(Protocol):
    async def start(self) -> None:
        """Builds and starts every part; on failure, closes what was built, then raises."""

    async def stop(self) -> None:
        """Stops listening, lets calls in flight finish within the grace, then closes the
        workers, the clients and the stores, in the reverse order of ``start``."""


async def build_or_unwind(
    parts: contextlib.AsyncExitStack,
    build: Callable[[contextlib.AsyncExitStack], Awaitable[None]],
) -> None:
    """Runs ``build``, which enters each part in ``parts`` as it makes it; if it raises (or is
    cancelled) half-way, closes exactly what it entered, in reverse, and re-raises."""
    try:
        await build(parts)
    except BaseException:
        await parts.aclose()
        raise


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    # grpc.aio drives its completion queue from its own thread and only needs
    # call_soon_threadsafe from the loop, which uvloop provides; the node test suite runs a node
    # on uvloop to keep that true across upgrades.
    import uvloop

    return uvloop.new_event_loop


async def wait_for_stop_signal() -> None:
    """Returns on the first SIGTERM or SIGINT; the default handlers are back afterwards."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, _on_signal, sig, stop)
    try:
        await stop.wait()
    finally:
        for sig in STOP_SIGNALS:
            with contextlib.suppress(RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


def _on_signal(sig: signal.Signals, stop: asyncio.Event) -> None:
    log.info("received %s", sig.name)
    stop.set()


async def serve(daemon: Daemon, ready: asyncio.Event | None = None) -> None:
    """Starts ``daemon``, sets ``ready``, and stops the daemon after SIGTERM or SIGINT (or when
    cancelled). Before ``start`` returns, a signal still has its default effect."""
    await daemon.start()
    try:
        if ready is not None:
            ready.set()
        await wait_for_stop_signal()
    finally:
        await daemon.stop()


def run_daemon(name: str, daemon: Daemon, log_format: LogFormat = LogFormat.TEXT) -> None:
    """Blocking entry point: logging (unless set up already), allocator, uvloop, then ``serve``."""
    configure_logging(name, log_format)
    tune_allocator()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(daemon))
