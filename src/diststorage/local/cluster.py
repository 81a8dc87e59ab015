"""Runs one gateway and N storage nodes as child processes on loopback.

Each child is a real ``python -m diststorage`` process with its own data folder and log file,
so tests and ``diststorage up`` exercise exactly what an operator would run. Children are
stopped with SIGTERM, then SIGKILL after a grace period; nothing outlives ``stop``.

Every gateway of the cluster gets one root key, through its environment (never its argv):
the one given, else the one in ``root-credentials`` in the cluster's folder, generated there
(mode 0600) on the first start; ``root_credentials`` is it. The metadata URL, too, goes through
the environment. The gateways also share one master
key file, ``secrets.key`` in the cluster's folder, since they share one metadata database.

Every gRPC link runs mutual TLS under the cluster CA in ``cluster/`` in the cluster's folder
(``diststorage cluster init``, done here on the first start), given to every child with
``--cluster-dir``; ``insecure_cluster`` starts every child with ``--insecure-cluster`` instead.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from diststorage.core.cluster_tls import init_cluster_dir
from diststorage.core.credentials import (
    Credentials,
    new_credentials,
    read_credentials_file,
    root_environment,
    write_credentials_file,
)
from diststorage.core.secrets import load_or_create_master_key
from diststorage.core.settings import METADATA_URL_ENV

STOP_GRACE_S = 10.0
# free_port picks from LOWEST_PORT up to the first port of the kernel's ephemeral range,
# which this file gives; without it, the kernel picks.
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000
LOG_TAIL_LINES = 20
ROOT_CREDENTIALS_FILE = "root-credentials"
SECRETS_KEY_FILE = "secrets.key"
CLUSTER_DIR = "cluster"

# Ports free_port gave out in this process, so that two children never get the same one.
_handed_out: set[int] = set()


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on, for a child to bind later, from below the kernel's ephemeral
    range: a port from that range (what binding port 0 gives) can be taken by any outgoing
    connection in the meantime, and then the child fails to start. Never the same port twice
    in one process."""
    first_ephemeral = _first_ephemeral_port()
    if first_ephemeral - LOWEST_PORT < 1_000:
        return _kernel_port(host)
    for _ in range(100):
        port = random.randrange(LOWEST_PORT, first_ephemeral)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    return _kernel_port(host)


def _first_ephemeral_port() -> int:
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return LOWEST_PORT


def _kernel_port(host: str) -> int:
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


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The gateways' certificate and key, and the CA that issued them (for clients)."""

    cert: Path
    key: Path
    ca: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))


@dataclass
class LocalCluster:
    data_dir: Path
    nodes: int = 6
    http_port: int = 7001
    grpc_port: int = 7002
    # Gateways beyond the first: (HTTP port, gRPC port) each. They share ``metadata_url``.
    extra_gateway_ports: list[tuple[int, int]] = field(default_factory=list)
    metadata_url: str | None = None
    node_ports: list[int] = field(default_factory=list)
    redundancy: str = "ec:4+2"
    host: str = "127.0.0.1"
    node_capacity_bytes: int | None = None
    gateway_args: list[str] = field(default_factory=list)
    node_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    root_credentials: Credentials | None = None
    # The S3 port of each gateway, first gateway first; a gateway past the list serves no S3.
    s3_ports: list[int] = field(default_factory=list)
    # Every HTTP listener of every gateway serves TLS with these.
    tls: TlsFiles | None = None
    # Plaintext, unauthenticated gRPC links (--insecure-cluster) instead of mutual TLS.
    insecure_cluster: bool = False
    # Worker processes of each gateway (--workers); None leaves it to the gateway's default
    # (one per CPU on PostgreSQL). One unless asked: a test or bench that means several gateways
    # gets one process each, whatever the machine's cores.
    gateway_workers: int | None = 1
    _gateways: list[_Child] = field(default_factory=list)
    _nodes: list[_Child] = field(default_factory=list)
    # What ``add_node`` gave a node beyond the others' arguments (its extra arguments, its
    # gateway name), by index: a restart of that node must start it the same way.
    _added: dict[int, tuple[tuple[str, ...], str | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.node_ports:
            self.node_ports = [self.http_port + 100 + i for i in range(self.nodes)]
        self.data_dir = self.data_dir.resolve()

    @property
    def scheme(self) -> str:
        return "http" if self.tls is None else "https"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.http_port}"

    @property
    def s3_url(self) -> str:
        """The first gateway's S3 endpoint."""
        return self.s3_urls[0]

    @property
    def s3_urls(self) -> list[str]:
        return [f"{self.scheme}://{self.host}:{port}" for port in self.s3_ports]

    @property
    def root_credentials_path(self) -> Path:
        return self.data_dir / ROOT_CREDENTIALS_FILE

    @property
    def root(self) -> Credentials:
        """The gateways' root key (known once the cluster started, or was given one)."""
        assert self.root_credentials is not None, "the cluster has not started"
        return self.root_credentials

    def _load_root_credentials(self) -> Credentials:
        if self.root_credentials is not None:
            return self.root_credentials
        path = self.root_credentials_path
        if path.exists():
            return read_credentials_file(path)
        credentials = new_credentials()
        write_credentials_file(path, credentials)
        return credentials

    @property
    def cluster_dir(self) -> Path:
        """The cluster CA every child's gRPC links are secured with (unless insecure)."""
        return self.data_dir / CLUSTER_DIR

    def _link_args(self) -> list[str]:
        if self.insecure_cluster:
            return ["--insecure-cluster"]
        return ["--cluster-dir", str(self.cluster_dir)]

    @property
    def gateway_ports(self) -> list[tuple[int, int]]:
        return [(self.http_port, self.grpc_port), *self.extra_gateway_ports]

    @property
    def urls(self) -> list[str]:
        return [f"{self.scheme}://{self.host}:{http}" for http, _ in self.gateway_ports]

    @property
    def _gateway(self) -> _Child | None:
        return self._gateways[0] if self._gateways else None

    def _python(self) -> list[str]:
        return [sys.executable, "-m", "diststorage"]

    def _gateway_child(self, index: int = 0) -> _Child:
        http_port, grpc_port = self.gateway_ports[index]
        argv = [
            *self._python(),
            "gateway",
            "--listen",
            f"{self.host}:{http_port}",
            "--grpc-listen",
            f"{self.host}:{grpc_port}",
            "--data",
            str(self.data_dir / _gateway_name(index)),
            "--redundancy",
            self.redundancy,
            "--secrets-key-file",
            str(self.data_dir / SECRETS_KEY_FILE),
            *self._s3_args(index),
            *self._link_args(),
            *([] if self.gateway_workers is None else ["--workers", str(self.gateway_workers)]),
            *self.gateway_args,
        ]
        env = {**self.env, **root_environment(self.root)}
        if self.metadata_url:
            # A PostgreSQL URL holds its password: the environment, not argv, where `ps` shows it.
            env[METADATA_URL_ENV] = self.metadata_url
        return _Child(_gateway_name(index), argv, self.gateway_log_path(index), env)

    def _s3_args(self, index: int) -> list[str]:
        args = []
        if index < len(self.s3_ports):
            args += ["--s3-listen", f"{self.host}:{self.s3_ports[index]}"]
        if self.tls is not None:
            args += ["--tls-cert", str(self.tls.cert), "--tls-key", str(self.tls.key)]
        return args

    def _node_child(self, index: int) -> _Child:
        extra_args, gateway_dns = self._added.get(index, ((), None))
        argv = [
            *self._python(),
            "node",
            "--listen",
            f"{self.host}:{self.node_ports[index]}",
            "--data",
            str(self.data_dir / f"node{index}"),
            *self._link_args(),
        ]
        if gateway_dns is not None:
            argv += ["--gateway-dns", gateway_dns]
        else:
            for _, grpc_port in self.gateway_ports:
                argv += ["--gateway", f"{self.host}:{grpc_port}"]
        if self.node_capacity_bytes is not None:
            argv += ["--capacity", str(self.node_capacity_bytes)]
        argv += [*self.node_args, *extra_args]
        return _Child(f"node{index}", argv, self.data_dir / "logs" / f"node{index}.log", self.env)

    def start(self, timeout_s: float = 60.0) -> None:
        """Starts every process and waits until the gateway reports itself healthy."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.root_credentials = self._load_root_credentials()
        load_or_create_master_key(self.data_dir / SECRETS_KEY_FILE)
        if not self.insecure_cluster:
            init_cluster_dir(self.cluster_dir)
        self._gateways = [self._gateway_child(i) for i in range(len(self.gateway_ports))]
        self._nodes = [self._node_child(i) for i in range(self.nodes)]
        try:
            for gateway in self._gateways:
                gateway.start()
            for child in self._nodes:
                child.start()
            for url in self.urls:
                self.wait_live_nodes(self.nodes, timeout_s, url)
        except BaseException:
            self.stop()
            raise

    def health(self, url: str | None = None) -> tuple[int, dict[str, Any]]:
        try:
            context = None if self.tls is None else self.tls.client_context()
            with urllib.request.urlopen(
                (url or self.url) + "/_/health", timeout=2, context=context
            ) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def wait_live_nodes(self, count: int, timeout_s: float = 60.0, url: str | None = None) -> None:
        """Waits until the gateway at ``url`` (default: the first) sees ``count`` live nodes."""
        deadline = time.monotonic() + timeout_s
        last: object = None
        gateway = self._gateways[self.urls.index(url)] if url else self._gateway
        while time.monotonic() < deadline:
            if gateway is not None and not gateway.running:
                raise RuntimeError(
                    f"a gateway exited; its log ({gateway.log_path}) ends:\n"
                    + _tail(gateway.log_path)
                )
            try:
                _, body = self.health(url)
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

    def node_running(self, index: int) -> bool:
        """Node ``index`` was started and has not exited (a paused node is running)."""
        return self._nodes[index].running

    def gateway_pids(self) -> list[int]:
        """The process ids of the gateways that were started, first gateway first."""
        return [g.process.pid for g in self._gateways if g.process is not None]

    def gateway_worker_pids(self, index: int = 0) -> list[int]:
        """The process ids of gateway ``index``'s worker processes (its children, when it runs
        several), from /proc; empty for a gateway of one process."""
        pid = self.gateway_pids()[index]
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            return []
        return sorted(int(child) for child in children if _is_gateway_worker(int(child)))

    def gateway_running(self, index: int = 0) -> bool:
        """Gateway ``index`` was started and has not exited."""
        return index < len(self._gateways) and self._gateways[index].running

    def gateway_log_path(self, index: int = 0) -> Path:
        """The log file of gateway ``index`` (``logs/gateway.log`` for the first)."""
        return self.data_dir / "logs" / f"{_gateway_name(index)}.log"

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

    def add_node(
        self, port: int, extra_args: Sequence[str] = (), gateway_dns: str | None = None
    ) -> int:
        """Starts one more node, with an empty folder, on ``port``; returns its index. With
        ``gateway_dns`` it finds its gateways by that name instead of being given them. A
        restart (``start_node``, ``restart_all``) starts it with the same arguments."""
        self.node_ports.append(port)
        self.nodes += 1
        index = self.nodes - 1
        self._added[index] = (tuple(extra_args), gateway_dns)
        self._nodes.append(self._node_child(index))
        self._nodes[index].start()
        return index

    def drop_last_node(self) -> None:
        """Stops the most recently added node and forgets it (its folder stays)."""
        child = self._nodes.pop()
        child.signal(signal.SIGCONT)
        child.stop()
        self.node_ports.pop()
        self.nodes -= 1
        self._added.pop(self.nodes, None)

    def kill_gateway(self, index: int = 0) -> None:
        gateway = self._gateways[index]
        gateway.signal(signal.SIGKILL)
        if gateway.process is not None:
            gateway.process.wait()
        gateway.stop()

    def start_gateway(self, index: int = 0) -> None:
        self._gateways[index] = self._gateway_child(index)
        self._gateways[index].start()

    def kill_all(self) -> None:
        for child in [*self._nodes, *self._gateways]:
            child.signal(signal.SIGKILL)
            if child.process is not None:
                child.process.wait()
            child.stop()

    def restart_all(self, timeout_s: float = 60.0) -> None:
        for index in range(len(self._gateways)):
            self.start_gateway(index)
        for index in range(self.nodes):
            self.start_node(index)
        for url in self.urls:
            self.wait_live_nodes(self.nodes, timeout_s, url)

    def node_data_dir(self, index: int) -> Path:
        return self.data_dir / f"node{index}"

    def stop(self) -> None:
        """SIGTERM to every child at once, SIGKILL to any that outlives the grace period.

        The gateways are told with the nodes, not after them: a gateway whose nodes are already
        gone takes several seconds more to shut down (about 11 s against 3 s for the whole
        cluster, measured on a loaded machine), and a test run stops a cluster per module.
        """
        children = [*self._nodes, *self._gateways]
        for child in children:
            child.signal(signal.SIGCONT)
            child.signal(signal.SIGTERM)
        for child in children:
            child.stop()

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _gateway_name(index: int) -> str:
    """Names the first gateway's folder and log ``gateway``, the others ``gateway<index>``."""
    return "gateway" if index == 0 else f"gateway{index}"


def _is_gateway_worker(pid: int) -> bool:
    """A worker's command line, not the schema migration's child of the first worker."""
    try:
        return b"worker_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def _tail(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as error:
        return f"(unreadable: {error})"
    return "\n".join(lines[-LOG_TAIL_LINES:])
