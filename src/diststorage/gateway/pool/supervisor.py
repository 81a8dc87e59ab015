"""The parent of a gateway's worker processes: starts them, restarts one that dies, stops
them all on SIGTERM or SIGINT.

The first worker is started alone and waited for: it does what a gateway does on its first
start (migrates the schema, creates the identity, the root key and the master key's check in
the database), so the others, started once it serves, find all of it made. After that::

    worker exits ──▶ logged, restarted (not sooner than RESTART_DELAY_S after its last start)
         └── the same worker died MAX_DEATHS times within DEATH_WINDOW_S ──▶ stop all, exit 1
    SIGTERM / SIGINT ──▶ SIGTERM to every worker ──▶ each finishes within stop_grace_s,
         else SIGKILL ──▶ the run folder removed ──▶ exit 0

Each worker asks the kernel to SIGKILL it should this process die (``role.die_with_parent``),
so a supervisor killed outright leaves no worker behind holding the ports.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diststorage.gateway.pool.role import WorkerHandoff, WorkerRole

log = logging.getLogger(__name__)

POLL_S = 0.2
STARTUP_TIMEOUT_S = 600.0  # the first worker's start includes the schema migration
RESTART_DELAY_S = 1.0
MAX_DEATHS = 5
DEATH_WINDOW_S = 60.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass
class _Worker:
    role: WorkerRole
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    deaths: deque[float] = field(default_factory=deque)

    def start(self, command: Sequence[str], settings: dict[str, Any]) -> None:
        self.process = subprocess.Popen(list(command), stdin=subprocess.PIPE)
        assert self.process.stdin is not None
        with self.process.stdin:
            self.process.stdin.write(WorkerHandoff(self.role, settings).encode())
        self.started_at = time.monotonic()
        log.info("worker %d started (pid %d)", self.role.index, self.process.pid)

    def exit_code(self) -> int | None:
        return None if self.process is None else self.process.poll()


def run_supervisor(
    command: Sequence[str], settings: dict[str, Any], count: int, stop_grace_s: float
) -> int:
    """Runs ``count`` workers, each ``command`` with its handoff on stdin, until SIGTERM or
    SIGINT; returns the exit code for this process (see the module docstring)."""
    stop = threading.Event()
    for signum in STOP_SIGNALS:
        signal.signal(signum, lambda sig, _frame: _stop_on(sig, stop))
    run_dir = Path(tempfile.mkdtemp(prefix="diststorage-gateway-"))  # 0700
    parent_pid = os.getpid()
    workers = [_Worker(WorkerRole(i, count, run_dir, parent_pid)) for i in range(count)]
    log.info("gateway of %d worker processes (supervisor pid %d)", count, parent_pid)
    try:
        first = workers[0]
        first.start(command, settings)
        code = _wait_ready(first, stop)
        if code is not None:
            log.error("worker 0 exited with code %d before it served", code)
            return code or 1
        if stop.is_set():
            return 0
        for worker in workers[1:]:
            worker.start(command, settings)
        return _watch(workers, command, settings, stop)
    finally:
        _stop_all(workers, stop_grace_s)
        shutil.rmtree(run_dir, ignore_errors=True)


def _stop_on(signum: int, stop: threading.Event) -> None:
    log.info("received %s: stopping the workers", signal.Signals(signum).name)
    stop.set()


def _wait_ready(worker: _Worker, stop: threading.Event) -> int | None:
    """None once the worker serves (or a stop was asked); its exit code if it exited first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    ready = worker.role.ready_path(worker.role.index)
    while not stop.is_set() and time.monotonic() < deadline:
        code = worker.exit_code()
        if code is not None:
            return code
        if ready.exists():
            return None
        stop.wait(POLL_S)
    if not stop.is_set():
        log.error("worker 0 did not serve within %g s", STARTUP_TIMEOUT_S)
        return 1
    return None


def _watch(
    workers: list[_Worker], command: Sequence[str], settings: dict[str, Any], stop: threading.Event
) -> int:
    while not stop.is_set():
        now = time.monotonic()
        for worker in workers:
            if worker.process is not None:
                code = worker.process.poll()
                if code is None:
                    continue
                log.warning(
                    "worker %d (pid %d) exited with code %d: restarting it",
                    worker.role.index,
                    worker.process.pid,
                    code,
                )
                worker.process = None
                worker.deaths.append(now)
                while worker.deaths and worker.deaths[0] < now - DEATH_WINDOW_S:
                    worker.deaths.popleft()
                if len(worker.deaths) >= MAX_DEATHS:
                    log.error(
                        "worker %d died %d times within %g s: stopping the gateway",
                        worker.role.index,
                        len(worker.deaths),
                        DEATH_WINDOW_S,
                    )
                    return 1
            if now - worker.started_at >= RESTART_DELAY_S:
                worker.start(command, settings)
        stop.wait(POLL_S)
    return 0


def _stop_all(workers: list[_Worker], grace_s: float) -> None:
    running = [w.process for w in workers if w.process is not None and w.process.poll() is None]
    for process in running:
        process.send_signal(signal.SIGCONT)  # a paused worker would never act on SIGTERM
        process.terminate()
    deadline = time.monotonic() + grace_s
    for process in running:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("worker pid %d outlived the grace: killed", process.pid)
            process.kill()
            process.wait()
    if running:
        log.info("every worker stopped")
