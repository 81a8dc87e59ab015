"""CPU time: of a process with its descendants, of this client, of PostgreSQL, of the machine.

``CpuMeter`` puts them together over a block of code: the gateways, the nodes, PostgreSQL,
the client and the rest of the machine, each in CPU seconds.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import psutil


class ProcessTree:
    """A process and its descendants, less any in ``exclude`` (the cluster, for the client)."""

    def __init__(self, pid: int, exclude: frozenset[int] = frozenset()) -> None:
        self.root = psutil.Process(pid)
        self.exclude = exclude
        self.members: list[psutil.Process] = [self.root]
        self.refresh()

    def refresh(self) -> None:
        try:
            children = self.root.children(recursive=True)
        except psutil.Error:
            children = []
        excluded = set(self.exclude)
        for child in children:
            with suppress(psutil.Error):
                if child.ppid() in excluded:
                    excluded.add(child.pid)
        self.members = [self.root, *(c for c in children if c.pid not in excluded)]

    def rss(self) -> int:
        total = 0
        for process in self.members:
            with suppress(psutil.Error):
                total += process.memory_info().rss
        return total

    def cpu_s(self) -> float:
        total = 0.0
        for process in self.members:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
        return total


def machine_busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine since boot: all but idle and I/O wait (guest time
    is already inside user time)."""
    times = psutil.cpu_times()
    idle = times.idle + getattr(times, "iowait", 0.0)
    return sum(times) - idle - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def client_cpu_s() -> float:
    """CPU time of this process and of its waited-for children (curl)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def postgres_cpu_s(database: str | None = None) -> dict[int, float]:
    """CPU seconds of PostgreSQL's server processes, by pid. With ``database``, only those that
    work for it: its backends (their title names it) and the server's shared ones (WAL writer,
    checkpointer, autovacuum…), which also work for any other database in use; other
    databases' backends are left out. Without, every PostgreSQL process."""
    found: dict[int, float] = {}
    for process in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        if process.info["name"] != "postgres" or process.info["cpu_times"] is None:
            continue
        title = " ".join(process.info["cmdline"] or []).strip()
        backend = "(" in title or "[local]" in title
        if database is None or not backend or f" {database} " in title:
            times = process.info["cpu_times"]
            found[process.pid] = times.user + times.system
    return found


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


class CpuMeter:
    """CPU seconds of the gateways (each with its children), the nodes, PostgreSQL, this client
    (with curl) and the rest of the machine, over a block of code (``measure``).

    PostgreSQL counts only with ``postgres``: the processes that work for ``database`` (see
    ``postgres_cpu_s``), or all of them without one."""

    def __init__(
        self,
        gateway_pids: Sequence[int] = (),
        node_pids: Sequence[int] = (),
        *,
        postgres: bool = False,
        database: str | None = None,
    ) -> None:
        self._gateways = [ProcessTree(pid) for pid in gateway_pids]
        self._nodes = [ProcessTree(pid) for pid in node_pids]
        self._postgres_counts = postgres
        self._database = database

    def gateways_cpu_s(self) -> float:
        return sum(tree.cpu_s() for tree in self._gateways)

    def _postgres(self) -> dict[int, float]:
        return postgres_cpu_s(self._database) if self._postgres_counts else {}

    @contextmanager
    def measure(self, name: str) -> Iterator[CpuUse]:
        for tree in [*self._gateways, *self._nodes]:
            tree.refresh()
        use = CpuUse(name)
        gateways = [tree.cpu_s() for tree in self._gateways]
        nodes = sum(tree.cpu_s() for tree in self._nodes)
        postgres = self._postgres()
        client = client_cpu_s()
        machine = machine_busy_cpu_s()
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
            use.client_s = client_cpu_s() - client
            use.machine_s = machine_busy_cpu_s() - machine
