"""Clusters side by side in one run, taken in turns: each round measures every side once,
and the order is reversed every other round, so that all sides see the same machine (page
cache, other load) and none always runs first or warm.

A side is what its cluster's processes are started with: their environment (e.g. a
PYTHONPATH that makes them run another revision's code), extra gateway arguments, and plaintext
or mutually authenticated links. ``--link-comparison`` (links.py) and ``--baseline``
(baseline.py) are both two sides.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bench.common.cli import OPEN_GATEWAY_ARGS, say
from bench.common.interrupt import ignore_interrupts
from bench.common.sampler import ClusterSampler
from bench.transfer.results import NODES, REDUNDANCY
from diststorage.local import LocalCluster
from diststorage.testing import running_cluster


@dataclass(frozen=True)
class Side:
    name: str
    env: dict[str, str] = field(default_factory=dict)
    gateway_args: tuple[str, ...] = ()
    insecure_cluster: bool = False
    # --workers for the gateway; None for a gateway without the option.
    workers: int | None = 1


@dataclass
class RunningSide:
    side: Side
    cluster: LocalCluster
    # CPU per phase and each process's VmHWM (reset as a phase starts).
    sampler: ClusterSampler


def compile_sources(src: Path) -> None:
    """Byte-compiles ``src`` (writes its __pycache__ folders), as an install does. An editable
    install's sources are not compiled, and where PYTHONDONTWRITEBYTECODE is set every daemon
    then parses its imports from source at each start, which costs it ~10 MiB (Makefile): two
    sides must not differ in that, nor a run measure what no installed daemon would pay."""
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", "-j", "0", str(src)],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def turns(rounds: int, names: Sequence[str]) -> Iterator[tuple[int, str]]:
    """(round, side) for every side of every round: in the given order in even rounds,
    reversed in odd ones."""
    for n in range(rounds):
        for name in names if n % 2 == 0 else list(reversed(names)):
            yield n, name


@contextmanager
def running_sides(workdir: Path, sides: Sequence[Side]) -> Iterator[dict[str, RunningSide]]:
    """One cluster per side, each in ``workdir/<name>``, all stopped after the block (Ctrl-C
    and SIGTERM ignored while they stop)."""
    with ExitStack() as stack:
        running: dict[str, RunningSide] = {}
        for side in sides:
            say(f"{side.name}: starting {NODES} nodes + gateway ({REDUNDANCY})")
            cluster = stack.enter_context(
                running_cluster(
                    workdir / side.name,
                    nodes=NODES,
                    redundancy=REDUNDANCY,
                    gateway_args=[*OPEN_GATEWAY_ARGS, *side.gateway_args],
                    env=side.env,
                    insecure_cluster=side.insecure_cluster,
                    gateway_workers=side.workers,
                )
            )
            stack.callback(say, f"{side.name}: stopping the cluster")
            stack.callback(ignore_interrupts)
            nodes = [cluster.node_pid(i) for i in range(NODES)]
            sampler = ClusterSampler(cluster.gateway_pids()[0], nodes, kernel_peaks=True)
            running[side.name] = RunningSide(side, cluster, sampler)
        yield running
