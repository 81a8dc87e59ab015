"""Runs one gateway and N storage nodes as child processes on loopback.

Each child is a real ``python -m diststorage`` process with its own data folder and log file,
so tests and ``diststorage up`` exercise exactly what an operator would run. Children are
stopped with SIGTERM, then SIGKILL after a grace period; nothing outlives ``stop``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

STOP_GRACE_S = 10.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class _Child:
    name: str
    argv: list[str]
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **self.env},
        )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signum: int) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signum)

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                # A paused child would never act on SIGTERM.
                self.process.send_signal(signal.SIGCONT)
                self.process.terminate()
                try:
                    self.process.wait(grace_s)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
            self.process = None
        if self.log is not None:
            self.log.close()
            self.log = None


@dataclass
class LocalCluster:
    data_dir: Path
    nodes: int = 6
    http_port: int = 7001
    grpc_port: int = 7002
    node_ports: list[int] = field(default_factory=list)
    redundancy: str = "ec:4+2"
    host: str = "127.0.0.1"
    node_capacity_bytes: int | None = None
    gateway_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    _gateway: _Child | None = None
    _nodes: list[_Child] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.node_ports:
            self.node_ports = [self.http_port + 100 + i for i in range(self.nodes)]
        self.data_dir = self.data_dir.resolve()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def _python(self) -> list[str]:
        return [sys.executable, "-m", "diststorage"]

    def _gateway_child(self) -> _Child:
        argv = [
            *self._python(),
            "gateway",
            "--listen",
            f"{self.host}:{self.http_port}",
            "--grpc-listen",
            f"{self.host}:{self.grpc_port}",
            "--data",
            str(self.data_dir / "gateway"),
            "--redundancy",
            self.redundancy,
            *self.gateway_args,
        ]
        return _Child("gateway", argv, self.data_dir / "logs" / "gateway.log", self.env)

    def _node_child(self, index: int) -> _Child:
        argv = [
            *self._python(),
            "node",
            "--listen",
            f"{self.host}:{self.node_ports[index]}",
            "--data",
            str(self.data_dir / f"node{index}"),
            "--gateway",
            f"{self.host}:{self.grpc_port}",
        ]
        if self.node_capacity_bytes is not None:
            argv += ["--capacity", str(self.node_capacity_bytes)]
        return _Child(f"node{index}", argv, self.data_dir / "logs" / f"node{index}.log", self.env)

    def start(self, timeout_s: float = 60.0) -> None:
        """Starts every process and waits until the gateway reports itself healthy."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._gateway = self._gateway_child()
        self._nodes = [self._node_child(i) for i in range(self.nodes)]
        try:
            self._gateway.start()
            for child in self._nodes:
                child.start()
            self.wait_live_nodes(self.nodes, timeout_s)
        except BaseException:
            self.stop()
            raise

    def health(self) -> tuple[int, dict[str, Any]]:
        try:
            with urllib.request.urlopen(self.url + "/_/health", timeout=2) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def wait_live_nodes(self, count: int, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            if self._gateway is not None and not self._gateway.running:
                raise RuntimeError(f"the gateway exited; see {self._gateway.log_path}")
            try:
                _, body = self.health()
                last = body
                if body.get("live_nodes", -1) == count:
                    return
            except (OSError, ValueError) as error:
                last = error
            time.sleep(0.1)
        raise TimeoutError(f"cluster not at {count} live nodes after {timeout_s}s: {last}")

    # -- faults and restarts -----------------------------------------------------------------

    def node_pid(self, index: int) -> int:
        process = self._nodes[index].process
        assert process is not None
        return process.pid

    def signal_node(self, index: int, signum: int) -> None:
        self._nodes[index].signal(signum)

    def kill_node(self, index: int) -> None:
        child = self._nodes[index]
        child.signal(signal.SIGKILL)
        if child.process is not None:
            child.process.wait()
        child.stop()

    def start_node(self, index: int) -> None:
        self._nodes[index] = self._node_child(index)
        self._nodes[index].start()

    def kill_gateway(self) -> None:
        assert self._gateway is not None
        self._gateway.signal(signal.SIGKILL)
        if self._gateway.process is not None:
            self._gateway.process.wait()
        self._gateway.stop()

    def start_gateway(self) -> None:
        self._gateway = self._gateway_child()
        self._gateway.start()

    def kill_all(self) -> None:
        for child in [*self._nodes, *([self._gateway] if self._gateway else [])]:
            child.signal(signal.SIGKILL)
            if child.process is not None:
                child.process.wait()
            child.stop()

    def restart_all(self, timeout_s: float = 60.0) -> None:
        self.start_gateway()
        for index in range(self.nodes):
            self.start_node(index)
        self.wait_live_nodes(self.nodes, timeout_s)

    def node_data_dir(self, index: int) -> Path:
        return self.data_dir / f"node{index}"

    def stop(self) -> None:
        """SIGTERM to every child, SIGKILL to any that outlives the grace period."""
        for child in self._nodes:
            child.signal(signal.SIGCONT)
            child.signal(signal.SIGTERM)
        for child in self._nodes:
            child.stop()
        if self._gateway is not None:
            self._gateway.stop()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
