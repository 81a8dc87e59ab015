"""What scale_out.py times in one configuration, and the CPU each side used meanwhile.

- 4 KiB PUT and GET: bench_ops's cases, spread round-robin over the configuration's gateways
  (with two, every read crosses to the gateway that did not write).
- A large object uploaded (curl) through the first gateway and downloaded through the last:
  bench_transfer's calls and checks.
- ``CpuMeter``: CPU seconds of the gateways (each with its children), the nodes, the PostgreSQL
  server processes that serve this run's database, this client (with curl), and the rest of
  the machine, over a block of code.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import psutil

from bench.common.curl import Transfer, check_download, curl_download, curl_upload
from bench.common.report import size_label
from bench.common.sampler import _client_cpu_s, _machine_busy_cpu_s, _Tree

T = TypeVar("T")
# A case stops after its operation count or this long, whichever comes first.
OPS_TIME_CAP_S = 900.0


# -- CPU ---------------------------------------------------------------------------------------


@dataclass
class CpuUse:
    """CPU seconds over one block; filled in when the block ends."""

    name: str
    wall_s: float = 0.0
    gateways_s: tuple[float, ...] = ()
    nodes_s: float = 0.0
    postgres_s: float = 0.0
    client_s: float = 0.0
    machine_s: float = 0.0

    @property
    def other_s(self) -> float:
        """The rest of the machine: other programs (other benchmarks), kernel threads."""
        ours = sum(self.gateways_s) + self.nodes_s + self.postgres_s + self.client_s
        return max(0.0, self.machine_s - ours)

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "wall_s": round(self.wall_s, 3),
            "gateways_cpu_s": [round(s, 2) for s in self.gateways_s],
            "nodes_cpu_s": round(self.nodes_s, 2),
            "postgres_cpu_s": round(self.postgres_s, 2),
            "client_cpu_s": round(self.client_s, 2),
            "other_cpu_s": round(self.other_s, 2),
            "machine_busy_cpu_s": round(self.machine_s, 2),
        }


def _postgres_cpu_s(database: str) -> dict[int, float]:
    """PostgreSQL processes that work for ``database``: its backends (their title names it) and
    the server's shared ones (WAL writer, checkpointer, autovacuum…), which also work for
    any other database in use. Other databases' backends are left out."""
    found: dict[int, float] = {}
    for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        if process.info["name"] != "postgres" or process.info["cpu_times"] is None:
            continue
        title = " ".join(process.info["cmdline"] or []).strip()
        backend = "(" in title or "[local]" in title
        if not backend or f" {database} " in title:
            times = process.info["cpu_times"]
            found[process.pid] = times.user + times.system
    return found


class CpuMeter:
    def __init__(self, gateway_pids: list[int], node_pids: list[int], database: str | None) -> None:
        self._gateways = [_Tree(pid) for pid in gateway_pids]
        self._nodes = [_Tree(pid) for pid in node_pids]
        self._database = database

    def gateways_cpu_s(self) -> float:
        return sum(tree.cpu_s() for tree in self._gateways)

    def _postgres(self) -> dict[int, float]:
        return _postgres_cpu_s(self._database) if self._database else {}

    @contextmanager
    def measure(self, name: str) -> Iterator[CpuUse]:
        for tree in [*self._gateways, *self._nodes]:
            tree.refresh()
        use = CpuUse(name)
        gateways = [tree.cpu_s() for tree in self._gateways]
        nodes = sum(tree.cpu_s() for tree in self._nodes)
        postgres = self._postgres()
        client = _client_cpu_s()
        machine = _machine_busy_cpu_s()
        started = time.perf_counter()
        try:
            yield use
        finally:
            use.wall_s = time.perf_counter() - started
            use.gateways_s = tuple(
                tree.cpu_s() - before for tree, before in zip(self._gateways, gateways, strict=True)
            )
            use.nodes_s = sum(tree.cpu_s() for tree in self._nodes) - nodes
            # A server process that ended in between is missed; the gateways' pooled
            # connections live as long as the gateways.
            use.postgres_s = sum(
                cpu - postgres.get(pid, 0.0) for pid, cpu in self._postgres().items()
            )
            use.client_s = _client_cpu_s() - client
            use.machine_s = _machine_busy_cpu_s() - machine


# -- one large object --------------------------------------------------------------------------


@dataclass
class TransferRecord:
    transfer: Transfer
    gateway: int  # index into the configuration's gateways
    cpu: CpuUse


def large_object(
    urls: list[str],
    key: str,
    source: Path,
    source_md5: str,
    size: int,
    workdir: Path,
    meter: CpuMeter,
    settle: Callable[[], None],
) -> list[TransferRecord]:
    """Uploads ``source`` through the first gateway, then downloads it through the last: a
    timed download into /dev/null (size and ETag checked), then an untimed one into a file,
    hashed and compared with the source (as bench/run.py does, so that filling the page cache
    does not cost the timed download a CPU-second). Stops at the first transfer that fails."""
    first, last = 0, len(urls) - 1
    records: list[TransferRecord] = []
    settle()
    with meter.measure(f"upload {size_label(size)} via gateway {first + 1}") as cpu:
        up = curl_upload(urls[first], key, source, size, source_md5)
    records.append(TransferRecord(up, first, cpu))
    if not up.ok:
        return records
    target = workdir / "download.bin"
    headers = workdir / "download.headers"
    try:
        settle()
        with meter.measure(f"download {size_label(size)} via gateway {last + 1}") as cpu:
            down, etag = curl_download(urls[last], key, Path(os.devnull), headers, size)
        if down.status == 200 and not down.detail:
            check_download(down, None, etag, source_md5)
        records.append(TransferRecord(down, last, cpu))
        if not down.ok:
            return records
        with meter.measure(f"verify {size_label(size)} via gateway {last + 1}") as cpu:
            verify, etag = curl_download(urls[last], key, target, headers, size, "verify")
        if verify.status == 200 and not verify.detail:
            check_download(verify, target, etag, source_md5)
        records.append(TransferRecord(verify, last, cpu))
    finally:
        target.unlink(missing_ok=True)
        headers.unlink(missing_ok=True)
    return records
