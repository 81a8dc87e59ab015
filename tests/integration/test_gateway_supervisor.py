"""The supervisor of a gateway's worker processes, over stand-in workers (small Python
scripts that read their handoff and then serve, die or hang as told): a worker that keeps
dying ends the gateway with exit code 1, a first worker that fails before it serves ends it
with that worker's code, and SIGTERM stops a worker that ignores it after the grace."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import wait_until

WORKER = """
import json, os, signal, sys, time
from pathlib import Path
handoff = json.loads(sys.stdin.buffer.read())
role = handoff["role"]
behaviour = handoff["settings"]["behaviour"]
index = role["index"]
if behaviour == "fail-first" and index == 0:
    sys.exit(7)
Path(role["run_dir"], f"w{index}.ready").touch()
if behaviour == "die" and index == 1:
    time.sleep(0.1)
    sys.exit(3)
if behaviour == "hang":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
while True:
    time.sleep(1)
"""

SUPERVISOR = """
import logging, sys
from diststorage.gateway.pool import run_supervisor
logging.basicConfig(level=logging.INFO, format="%(message)s")
command = [sys.executable, sys.argv[1]]
sys.exit(run_supervisor(command, {{"behaviour": sys.argv[2]}}, 2, {grace_s}))
"""


def supervise(tmp_path: Path, behaviour: str, grace_s: float = 5.0) -> subprocess.Popen[bytes]:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    log = (tmp_path / "supervisor.log").open("wb")
    return subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR.format(grace_s=grace_s), str(worker), behaviour],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )


def test_a_worker_that_keeps_dying_stops_the_gateway_with_code_1(tmp_path: Path) -> None:
    supervisor = supervise(tmp_path, "die")
    try:
        assert supervisor.wait(120) == 1
    finally:
        supervisor.kill()
        supervisor.wait()
    log = (tmp_path / "supervisor.log").read_text()
    assert log.count("worker 1 (pid") == 5
    assert "worker 1 died 5 times within 60 s: stopping the gateway" in log


def test_a_first_worker_that_fails_before_serving_ends_the_gateway(tmp_path: Path) -> None:
    supervisor = supervise(tmp_path, "fail-first")
    try:
        assert supervisor.wait(120) == 7
    finally:
        supervisor.kill()
        supervisor.wait()
    assert (
        "worker 0 exited with code 7 before it served" in (tmp_path / "supervisor.log").read_text()
    )


def test_sigterm_kills_a_worker_that_outlives_the_grace(tmp_path: Path) -> None:
    supervisor = supervise(tmp_path, "hang", grace_s=1.0)
    log_path = tmp_path / "supervisor.log"
    try:
        assert wait_until(lambda: log_path.read_text().count("started (pid") == 2, 120)
        time.sleep(0.5)
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(120) == 0
    finally:
        supervisor.kill()
        supervisor.wait()
    log = log_path.read_text()
    assert log.count("outlived the grace: killed") == 2
    for line in log.splitlines():
        if "started (pid" in line:
            pid = int(line.rsplit("pid ", 1)[1].rstrip(")"))
            assert not Path(f"/proc/{pid}").exists()
