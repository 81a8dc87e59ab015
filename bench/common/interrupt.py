"""How a run reacts to Ctrl-C and SIGTERM, the same way in every suite.

SIGTERM stops a run the way Ctrl-C does: it raises SIGINT, so inside an ``asyncio.Runner``
the Runner's handler cancels the running step (its sessions close on the way out) and
elsewhere Python raises ``KeyboardInterrupt``. While a cluster stops and its database is
dropped, both are ignored, so that a second one cannot leave processes or a database behind.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType, TracebackType


def sigterm_as_sigint(_signum: int, _frame: FrameType | None) -> None:
    signal.raise_signal(signal.SIGINT)


def stop_on_interrupt() -> None:
    """Ctrl-C raises KeyboardInterrupt (Python's default), and SIGTERM does the same."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, sigterm_as_sigint)


def ignore_interrupts() -> None:
    """From here on Ctrl-C and SIGTERM do nothing: the cleanup must finish."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def default_signals() -> None:
    """Python's own handlers again: Ctrl-C raises KeyboardInterrupt, SIGTERM ends the process."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def resume_after_cleanup(
    exc_type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
) -> None:
    """An ExitStack exit callback: when a step's cleanup ends without an error and the run goes
    on, Ctrl-C and SIGTERM stop it again."""
    if exc_type is None:
        stop_on_interrupt()


@contextmanager
def interruptible_run() -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the run inside the block; Python's handlers are back after it."""
    stop_on_interrupt()
    try:
        yield
    finally:
        default_signals()
