"""The machine's own ceilings, measured in the same run as the transfers they bound.

- **gRPC** (``grpc_peer``): one process streaming 1 MiB raw-bytes messages to another over
  grpc.aio on 127.0.0.1, both ways (``pull``: server to client, as a node answers a gateway's
  read; ``push``: client to server, as a gateway writes to a node), plaintext and over mutual
  TLS under a cluster CA made for it (the cluster's own machinery).
- **Data link** (``link_peer``): the nodes' data link (``diststorage.core.datalink``), over
  which reads' blocks come, with nothing behind it: a server sending blocks from memory in its
  frames, sealed (as on a secure cluster) and in the clear, to a client taking them as the
  gateway does.
- **HTTP** (``http_peer``): the gateway's HTTP server stack sending bytes from memory to
  ``curl -o /dev/null`` (``out``), and taking a ``curl -T file`` upload that it drops (``in``).

Each is the fastest of three transfers of the object size against one server (the machine's
other load only ever slows one down), timed by the moving side, with the CPU seconds of the
sending and the receiving process. A download can go no faster than the slower of the data
link's pull (the nodes' shards into the gateway) and HTTP out; an upload no faster than the
slower of the disk floor and HTTP in (``download_bound``, ``upload_bound``). gRPC pull is
measured too, for reads from nodes without a data link.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil

from bench.common.cli import say
from bench.common.curl import run_curl
from bench.common.report import GIB, size_label
from bench.common.sampler import settle
from diststorage.core.cluster_tls import init_cluster_dir
from diststorage.core.datalink import new_link_secret
from diststorage.local import free_port

# The repository root: the peers run as ``python -m bench.transfer.…`` from there.
ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0
RUN_TIMEOUT_S = 900.0
STOP_GRACE_S = 10.0
# Each ceiling is the fastest of this many transfers, against one server.
RUNS = 3

GRPC_MODES = ("mtls", "plaintext")
GRPC_DIRECTIONS = {
    # direction: (what it stands for, sender, receiver)
    "pull": ("node → gateway (GetChunk)", "server", "client"),
    "push": ("gateway → node (PutChunk)", "client", "server"),
}


@dataclass
class Ceiling:
    key: str
    label: str
    size: int
    seconds: float
    sender: str
    sender_cpu_s: float
    receiver: str
    receiver_cpu_s: float
    ok: bool = True
    detail: str = ""

    @property
    def mb_s(self) -> float:
        return self.size / 1e6 / self.seconds if self.ok and self.seconds > 0 else 0.0

    def per_gib(self, cpu_s: float) -> float:
        return cpu_s / (self.size / GIB) if self.size else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "size_bytes": self.size,
            "seconds": round(self.seconds, 4),
            "mb_per_s": round(self.mb_s, 1),
            "sender": self.sender,
            "sender_cpu_s": round(self.sender_cpu_s, 3),
            "sender_cpu_s_per_gib": round(self.per_gib(self.sender_cpu_s), 3),
            "receiver": self.receiver,
            "receiver_cpu_s": round(self.receiver_cpu_s, 3),
            "receiver_cpu_s_per_gib": round(self.per_gib(self.receiver_cpu_s), 3),
            "ok": self.ok,
            "detail": self.detail,
        }


@dataclass
class Ceilings:
    size: int
    found: dict[str, Ceiling] = field(default_factory=dict)

    def add(self, ceiling: Ceiling) -> None:
        self.found[ceiling.key] = ceiling
        rate = f"{ceiling.mb_s:,.0f} MB/s" if ceiling.ok else f"failed: {ceiling.detail}"
        say(f"ceiling {ceiling.label}: {rate}")

    def get(self, key: str) -> Ceiling | None:
        ceiling = self.found.get(key)
        return ceiling if ceiling is not None and ceiling.ok else None

    def download_bound(self, secure: bool = True) -> Ceiling | None:
        """The slower of the data link's pull (as the cluster runs it) and HTTP out."""
        mode = "mtls" if secure else "plaintext"
        candidates = [c for c in (self.get(f"link-pull-{mode}"), self.get("http-out")) if c]
        return min(candidates, key=lambda c: c.mb_s, default=None)

    @property
    def failures(self) -> list[str]:
        return [f"ceiling {c.label}: {c.detail}" for c in self.found.values() if not c.ok]

    def to_json(self) -> dict[str, Any]:
        return {"size_bytes": self.size, "ceilings": [c.to_json() for c in self.found.values()]}


def upload_bound(floor_mb_s: float | None, ceilings: Ceilings | None) -> tuple[str, float] | None:
    """(name, object MB/s) of the slower of the disk floor and HTTP in."""
    candidates: list[tuple[str, float]] = []
    if floor_mb_s:
        candidates.append(("disk floor", floor_mb_s))
    http_in = ceilings.get("http-in") if ceilings is not None else None
    if http_in is not None:
        candidates.append((http_in.label, http_in.mb_s))
    return min(candidates, key=lambda c: c[1], default=None)


# -- the peers -----------------------------------------------------------------------------


def _python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _wait_listening(process: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the ceiling's server exited with {process.returncode}")
        with socket.socket() as probe:
            probe.settimeout(0.5)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"the ceiling's server did not listen on {port} in {START_TIMEOUT_S} s")


@contextmanager
def _server(
    argv: list[str], port: int, log: Path, stdin_text: str | None = None
) -> Iterator[psutil.Process]:
    """A peer server started for the block and stopped (SIGTERM, then SIGKILL) after it;
    ``stdin_text`` is written to its stdin (a secret, kept off its command line)."""
    with log.open("ab") as log_file:
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL if stdin_text is None else subprocess.PIPE,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        if process.stdin is not None and stdin_text is not None:
            process.stdin.write(stdin_text.encode())
            process.stdin.close()
        try:
            _wait_listening(process, port)
            yield psutil.Process(process.pid)
        finally:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _cpu_s(process: psutil.Process) -> float:
    with suppress(psutil.Error):
        times = process.cpu_times()
        return times.user + times.system
    return 0.0


def _children_cpu_s() -> float:
    times = os.times()
    return times.children_user + times.children_system


# -- gRPC ----------------------------------------------------------------------------------


def _grpc_run(
    argv: list[str], server: psutil.Process, ceiling: Ceiling, stdin_text: str | None = None
) -> Ceiling:
    """One timed client call against ``server``: a copy of ``ceiling`` with its figures."""
    size, sender, receiver = ceiling.size, ceiling.sender, ceiling.receiver
    measured = replace(ceiling, ok=False)
    before = _cpu_s(server)
    run = subprocess.run(
        argv,
        cwd=ROOT,
        input=stdin_text,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    server_cpu_s = _cpu_s(server) - before
    if run.returncode != 0:
        measured.detail = f"client exit {run.returncode}: {run.stderr.strip()[-300:]}"
        return measured
    answer = json.loads(run.stdout.strip().splitlines()[-1])
    cpu = {"server": server_cpu_s, "client": float(answer["cpu_s"])}
    measured.seconds = float(answer["seconds"])
    measured.sender_cpu_s = cpu[sender]
    measured.receiver_cpu_s = cpu[receiver]
    measured.ok = answer["bytes"] == size
    measured.detail = "" if measured.ok else f"{answer['bytes']} bytes moved, not {size}"
    return measured


def _grpc_case(direction: str, mode: str, size: int, ca_dir: Path, log: Path) -> Ceiling:
    what, sender, receiver = GRPC_DIRECTIONS[direction]
    key = f"grpc-{direction}-{mode}"
    label = f"gRPC {direction} {what}, {'mTLS' if mode == 'mtls' else 'plaintext'}"
    ceiling = Ceiling(key, label, size, 0.0, sender, 0.0, receiver, 0.0)
    tls = ["--cluster-dir", str(ca_dir)] if mode == "mtls" else []
    port = free_port()
    address = f"127.0.0.1:{port}"
    peer = "bench.transfer.grpc_peer"
    client = _python_module(peer, direction, "--target", address, "--bytes", str(size), *tls)
    runs = []
    with _server(_python_module(peer, "serve", "--listen", address, *tls), port, log) as server:
        for _ in range(RUNS):
            settle()
            runs.append(_grpc_run(client, server, ceiling))
    return _fastest(runs)


def _link_case(mode: str, size: int, log: Path) -> Ceiling:
    sealed = mode == "mtls"
    label = f"data link pull node → gateway (GetChunk), {'sealed' if sealed else 'in the clear'}"
    ceiling = Ceiling(f"link-pull-{mode}", label, size, 0.0, "server", 0.0, "client", 0.0)
    secret = new_link_secret()
    stdin_text = f"{secret.link_id.hex()} {secret.key.hex()}\n" if sealed else None
    flags = ["--sealed"] if sealed else []
    port = free_port()
    address = f"127.0.0.1:{port}"
    peer = "bench.transfer.link_peer"
    client = _python_module(peer, "pull", "--target", address, "--bytes", str(size), *flags)
    server_argv = _python_module(peer, "serve", "--listen", address, *flags)
    runs = []
    with _server(server_argv, port, log, stdin_text) as server:
        for _ in range(RUNS):
            settle()
            runs.append(_grpc_run(client, server, ceiling, stdin_text))
    return _fastest(runs)


def _fastest(runs: list[Ceiling]) -> Ceiling:
    """The fastest of the runs (what slows a ceiling down is the machine's other load), with
    how many there were; a failed run fails the ceiling."""
    failed = [r for r in runs if not r.ok]
    if failed:
        return failed[0]
    best = min(runs, key=lambda r: r.seconds)
    best.detail = f"fastest of {len(runs)}: {', '.join(f'{r.mb_s:,.0f}' for r in runs)} MB/s"
    return best


# -- HTTP ----------------------------------------------------------------------------------


def _curl_fields(out: str) -> list[str]:
    return out.rpartition("\n")[2].split()


def _http_out(url: str, size: int) -> tuple[float, float, bool, str]:
    """(seconds, curl CPU s, ok, detail) of a download of ``size`` bytes into /dev/null."""
    argv = ["curl", "-sS", "--http1.1", "-o", os.devnull]
    argv += ["-w", "%{http_code} %{time_total} %{size_download}", f"{url}/bytes/{size}"]
    before = _children_cpu_s()
    code, out, err = run_curl(argv)
    cpu_s = _children_cpu_s() - before
    fields = out.split()
    if code != 0 or len(fields) < 3 or fields[0] != "200" or int(float(fields[2])) != size:
        return 0.0, cpu_s, False, f"curl exit {code}, {out.strip()} {err.strip()}"
    return float(fields[1]), cpu_s, True, ""


def _http_in(url: str, source: Path, size: int) -> tuple[float, float, bool, str]:
    """(seconds, curl CPU s, ok, detail) of ``curl -T source`` into the sink."""
    argv = ["curl", "-sS", "--http1.1", "-T", str(source), "-H", "Expect:"]
    argv += ["-H", "Content-Type: application/octet-stream", "-o", "-"]
    argv += ["-w", "\n%{http_code} %{time_total}", f"{url}/sink"]
    before = _children_cpu_s()
    code, out, err = run_curl(argv)
    cpu_s = _children_cpu_s() - before
    body, _, _ = out.rpartition("\n")
    fields = _curl_fields(out)
    try:
        received = json.loads(body).get("received") if body else None
    except ValueError:
        received = None
    if code != 0 or len(fields) < 2 or fields[0] != "201" or received != size:
        return 0.0, cpu_s, False, f"curl exit {code}, {out.strip()[-200:]} {err.strip()}"
    return float(fields[1]), cpu_s, True, ""


def _http_cases(ceilings: Ceilings, size: int, source: Path, log: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = _python_module("bench.transfer.http_peer", "--listen", f"127.0.0.1:{port}")
    outs: list[Ceiling] = []
    ins: list[Ceiling] = []
    with _server(argv, port, log) as server:
        for _ in range(RUNS):
            settle()
            before = _cpu_s(server)
            seconds, curl_s, ok, detail = _http_out(url, size)
            server_s = _cpu_s(server) - before
            label = "HTTP out, gateway's server → curl -o /dev/null"
            out = Ceiling("http-out", label, size, seconds, "server", server_s, "curl", curl_s)
            out.ok, out.detail = ok, detail
            outs.append(out)
        for _ in range(RUNS):
            settle()
            before = _cpu_s(server)
            seconds, curl_s, ok, detail = _http_in(url, source, size)
            server_s = _cpu_s(server) - before
            label = "HTTP in, curl -T file → gateway's server"
            into = Ceiling("http-in", label, size, seconds, "curl", curl_s, "server", server_s)
            into.ok, into.detail = ok, detail
            ins.append(into)
    ceilings.add(_fastest(outs))
    ceilings.add(_fastest(ins))


def measure_ceilings(workdir: Path, source: Path) -> Ceilings:
    """Every ceiling for an object the size of ``source`` (which the HTTP-in case uploads)."""
    size = source.stat().st_size
    ceilings = Ceilings(size)
    ca_dir = workdir / "ceiling-ca"
    init_cluster_dir(ca_dir)
    log = workdir / "ceiling-peers.log"
    say(
        f"machine ceilings for {size_label(size)}: data link and gRPC (plaintext, mTLS) and HTTP,"
        " on loopback"
    )
    for mode in GRPC_MODES:
        ceilings.add(_link_case(mode, size, log))
        for direction in GRPC_DIRECTIONS:
            ceilings.add(_grpc_case(direction, mode, size, ca_dir, log))
    _http_cases(ceilings, size, source, log)
    return ceilings
