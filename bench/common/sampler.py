"""Peak RSS and CPU time of the gateway, the nodes and the benchmark client, per phase.

Peak RSS comes one of two ways. Sampled (the default): a background thread reads RSS every
~50 ms, each watched process counted with its descendants (re-listed about once a second,
since listing children scans /proc and costs far more than reading one process's memory).
From the kernel (``kernel_peaks``): each gateway and node process's VmHWM, reset as the phase
starts and read as it ends (``bench.common.peak``), exact and free of sampling; the client's
peak is then not measured. CPU time is read at the start and end of each phase.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import psutil

from bench.common.cpu import ProcessTree, client_cpu_s, machine_busy_cpu_s
from bench.common.peak import peak_bytes, reset_peak

MIB = 1 << 20

# Between phases: the page cache written back, and a moment for the cluster to go quiet.
SETTLE_S = 0.5


def settle() -> None:
    """Writes dirty pages back (``sync``) and waits ``SETTLE_S``, so that one phase's writeback
    does not land in the next one's figures."""
    os.sync()
    time.sleep(SETTLE_S)


@dataclass
class PhaseStats:
    name: str
    nodes: int
    wall_s: float = 0.0
    samples: int = 0
    gateway_peak_rss: int = 0
    node_peak_rss: list[int] = field(default_factory=list)
    client_peak_rss: int = 0
    gateway_cpu_s: float = 0.0
    nodes_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    machine_busy_cpu_s: float = 0.0
    other_top: list[tuple[str, float]] = field(default_factory=list)
    # "sampled" (every ~50 ms, with descendants) or "VmHWM" (the kernel's, process only).
    peak_source: str = "sampled"

    @property
    def other_cpu_s(self) -> float:
        """Busy CPU time of everything else on the machine: other programs, kernel threads,
        interrupts. High values mean the figures were measured on a shared, busy machine."""
        ours = self.gateway_cpu_s + self.nodes_cpu_s + self.client_cpu_s
        return max(0.0, self.machine_busy_cpu_s - ours)

    def __post_init__(self) -> None:
        if not self.node_peak_rss:
            self.node_peak_rss = [0] * self.nodes

    @property
    def node_max_peak_rss(self) -> int:
        return max(self.node_peak_rss, default=0)

    def cpu_per_gib(self, size: int) -> dict[str, float]:
        """CPU seconds per GiB of ``size`` bytes moved, by process group; "cluster" is the
        gateway and the nodes together."""
        gib = size / (1 << 30)
        if gib <= 0:
            return {}
        return {
            "cluster": (self.gateway_cpu_s + self.nodes_cpu_s) / gib,
            "gateway": self.gateway_cpu_s / gib,
            "nodes": self.nodes_cpu_s / gib,
            "client": self.client_cpu_s / gib,
            "other": self.other_cpu_s / gib,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "phase": self.name,
            "wall_s": round(self.wall_s, 3),
            "peak_source": self.peak_source,
            "samples": self.samples,
            "gateway_peak_rss_mib": round(self.gateway_peak_rss / MIB, 1),
            "node_peak_rss_mib": [round(v / MIB, 1) for v in self.node_peak_rss],
            "node_max_peak_rss_mib": round(self.node_max_peak_rss / MIB, 1),
            "client_peak_rss_mib": round(self.client_peak_rss / MIB, 1),
            "gateway_cpu_s": round(self.gateway_cpu_s, 2),
            "nodes_cpu_s": round(self.nodes_cpu_s, 2),
            "client_cpu_s": round(self.client_cpu_s, 2),
            "other_cpu_s": round(self.other_cpu_s, 2),
            "machine_busy_cpu_s": round(self.machine_busy_cpu_s, 2),
            "other_top_cpu_s": [[name, round(cpu, 2)] for name, cpu in self.other_top],
        }


def _label(process: psutil.Process) -> str:
    name = process.name()
    if name.startswith("python"):
        with suppress(psutil.Error):
            command = " ".join(process.cmdline())
            if "pytest" in command:
                return f"{name} (pytest)"
    return name


def _all_cpu() -> dict[int, tuple[str, float]]:
    """CPU time of every process on the machine, by pid, with a label."""
    snapshot: dict[int, tuple[str, float]] = {}
    for process in psutil.process_iter():
        with suppress(psutil.Error):
            times = process.cpu_times()
            snapshot[process.pid] = (_label(process), times.user + times.system)
    return snapshot


def _top_others(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], ours: set[int]
) -> list[tuple[str, float]]:
    """Who else used the CPU between two snapshots, summed by label, largest first."""
    used: dict[str, float] = {}
    for pid, (label, cpu) in after.items():
        if pid in ours:
            continue
        delta = cpu - before[pid][1] if pid in before else cpu
        if delta > 0:
            used[label] = used.get(label, 0.0) + delta
    return sorted(((n, c) for n, c in used.items() if c >= 0.05), key=lambda nc: -nc[1])[:4]


class ClusterSampler:
    def __init__(
        self,
        gateway_pid: int,
        node_pids: list[int],
        interval_s: float = 0.05,
        refresh_s: float = 1.0,
        kernel_peaks: bool = False,
    ) -> None:
        self.kernel_peaks = kernel_peaks
        self._pids = (gateway_pid, *node_pids)
        self.interval_s = interval_s
        self.refresh_s = refresh_s
        self._gateway = ProcessTree(gateway_pid)
        self._nodes = [ProcessTree(pid) for pid in node_pids]
        # The cluster's processes are children of this one; they are not the client.
        self._client = ProcessTree(os.getpid(), exclude=frozenset([gateway_pid, *node_pids]))
        self._lock = threading.Lock()
        self._phase: PhaseStats | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        """Starts sampling; with ``kernel_peaks`` there is nothing to sample."""
        if not self.kernel_peaks:
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _trees(self) -> list[ProcessTree]:
        return [self._gateway, *self._nodes, self._client]

    def _run(self) -> None:
        next_refresh = time.monotonic() + self.refresh_s
        while not self._stopping.wait(self.interval_s):
            if time.monotonic() >= next_refresh:
                for tree in self._trees():
                    tree.refresh()
                next_refresh = time.monotonic() + self.refresh_s
            self._sample()

    def _sample(self) -> None:
        with self._lock:
            if self._phase is None:
                return
        gateway = self._gateway.rss()
        nodes = [tree.rss() for tree in self._nodes]
        client = self._client.rss()
        with self._lock:
            stats = self._phase
            if stats is None:
                return
            stats.samples += 1
            stats.gateway_peak_rss = max(stats.gateway_peak_rss, gateway)
            stats.node_peak_rss = [
                max(a, b) for a, b in zip(stats.node_peak_rss, nodes, strict=True)
            ]
            stats.client_peak_rss = max(stats.client_peak_rss, client)

    def _cpu(self) -> tuple[float, float, float, float]:
        return (
            self._gateway.cpu_s(),
            sum(tree.cpu_s() for tree in self._nodes),
            client_cpu_s(),
            machine_busy_cpu_s(),
        )

    @contextmanager
    def phase(self, name: str) -> Iterator[PhaseStats]:
        """Peaks and CPU time from entry to exit; the stats are complete after the block."""
        for tree in self._trees():
            tree.refresh()
        stats = PhaseStats(name, nodes=len(self._nodes))
        everyone_before = _all_cpu()
        if self.kernel_peaks:
            stats.peak_source = "VmHWM"
            for pid in self._pids:
                reset_peak(pid)
        cpu_before = self._cpu()
        started = time.perf_counter()
        if not self.kernel_peaks:
            with self._lock:
                self._phase = stats
            self._sample()
        try:
            yield stats
        finally:
            stats.wall_s = time.perf_counter() - started
            if self.kernel_peaks:
                peaks = [peak_bytes(pid) for pid in self._pids]
                stats.gateway_peak_rss, stats.node_peak_rss = peaks[0], peaks[1:]
            else:
                self._sample()
                with self._lock:
                    self._phase = None
            cpu_after = self._cpu()
            stats.gateway_cpu_s = cpu_after[0] - cpu_before[0]
            stats.nodes_cpu_s = cpu_after[1] - cpu_before[1]
            stats.client_cpu_s = cpu_after[2] - cpu_before[2]
            stats.machine_busy_cpu_s = cpu_after[3] - cpu_before[3]
            ours = {p.pid for tree in self._trees() for p in tree.members}
            stats.other_top = _top_others(everyone_before, _all_cpu(), ours)
