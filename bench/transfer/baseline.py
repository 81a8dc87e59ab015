"""The working tree against another revision, side by side in one run.

    uv run python -m bench.transfer --baseline REV [--rounds 3] [--size-mib 1024] [--large-mib 4096]

REV is checked out into a temporary git worktree (``git worktree add --detach``, removed at
the end whatever happens); its ``src`` and this tree's are byte-compiled (sides.compile_sources).
Two clusters run at once (sides.py): ``baseline``, whose processes get
``PYTHONPATH=<worktree>/src`` (ahead of the editable install, so they import REV's
diststorage), and ``new``, whose processes get this tree's ``src`` the same way. Before anything
is measured, a child of each side's environment reports ``diststorage.__file__``, and the run
stops unless it is that side's ``src``; so it does unless each side's running gateway has that
``src`` first on its PYTHONPATH.

Every round measures both sides, alternating which goes first (sides.turns): per side, an
upload (``curl -T``, md5/ETag checked) and a download (``curl -o /dev/null``, ETag checked) of
the object size, and of ``--large-mib`` if given, then 4 KiB PUT and GET at concurrency 16 and
32 (bench.common.ops). Each large transfer has its CPU seconds per GiB by process group and
the VmHWM of the gateway and of the nodes (reset right before it). The machine's ceilings and
one disk floor are measured once, before the first round. baseline_report.py prints each
figure's median per side over the rounds, its range, and the ratio new/baseline; the JSON
document (``BaselineRun.to_json``) has every round.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
import statistics
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import uvloop

from bench.common.cli import say
from bench.common.curl import check_download, curl_download, curl_upload, write_random_file
from bench.common.ops import OBJECT_BYTES, Budget, get_case, put_case
from bench.common.report import MIB, machine_json, size_label
from bench.common.sampler import PhaseStats, settle
from bench.transfer.ceilings import ROOT, Ceilings, measure_ceilings
from bench.transfer.disk import DiskFloor, measure_disk_floor
from bench.transfer.results import NODES, REDUNDANCY
from bench.transfer.sides import RunningSide, Side, compile_sources, running_sides, turns

BASELINE, NEW = "baseline", "new"
OPS_CONCURRENCIES = (16, 32)
GROUPS = ("cluster", "gateway", "nodes", "client", "other")


@dataclass(frozen=True)
class BaselineConfig:
    rev: str
    rounds: int
    size: int
    large_size: int | None
    ops_seconds: float
    ops_warmup_s: float
    # Extra gateway arguments of each side (a list each: more may come, e.g. --workers).
    gateway_args: dict[str, tuple[str, ...]] = field(default_factory=dict)
    max_ops: int = 1_000_000

    @property
    def sizes(self) -> tuple[int, ...]:
        return (self.size,) if self.large_size is None else (self.size, self.large_size)


@dataclass
class BaselineRun:
    config: BaselineConfig
    baseline_commit: str = ""
    new_commit: str = ""
    # What each side's processes import diststorage from (checked before the first round).
    imports: dict[str, str] = field(default_factory=dict)
    # Per side, one {figure: value} per round.
    rounds: dict[str, list[dict[str, float]]] = field(
        default_factory=lambda: {BASELINE: [], NEW: []}
    )
    units: dict[str, str] = field(default_factory=dict)
    # Per side, every transfer and 4 KiB case as measured, with its phase.
    records: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {BASELINE: [], NEW: []}
    )
    ceilings: Ceilings | None = None
    floor: DiskFloor | None = None
    failures: list[str] = field(default_factory=list)
    load_at_start: list[float] = field(default_factory=lambda: [*os.getloadavg()])

    def fail(self, message: str) -> None:
        self.failures.append(message)
        say(f"!!! FAILURE: {message}")

    def values(self, side: str, figure: str) -> list[float]:
        return [r[figure] for r in self.rounds[side] if figure in r]

    def median(self, side: str, figure: str) -> float | None:
        values = self.values(side, figure)
        return statistics.median(values) if values else None

    def ratio(self, figure: str) -> float | None:
        old, new = self.median(BASELINE, figure), self.median(NEW, figure)
        return new / old if old and new is not None else None

    def to_json(self) -> dict[str, Any]:
        config = self.config
        return {
            "benchmark": "diststorage baseline comparison",
            "baseline_rev": config.rev,
            "baseline_commit": self.baseline_commit,
            "new_commit": self.new_commit,
            "imports": self.imports,
            "rounds": config.rounds,
            "size_bytes": config.size,
            "large_size_bytes": config.large_size,
            "ops_seconds": config.ops_seconds,
            "gateway_args": {side: list(args) for side, args in config.gateway_args.items()},
            "cluster": {"nodes": NODES, "redundancy": REDUNDANCY},
            "machine": machine_json(memory=True, load_at_start=self.load_at_start),
            "figures": [
                {
                    "figure": figure,
                    "unit": unit,
                    "baseline_median": _rounded(self.median(BASELINE, figure)),
                    "new_median": _rounded(self.median(NEW, figure)),
                    "new_over_baseline": _rounded(self.ratio(figure), 4),
                    "baseline_rounds": [_rounded(v) for v in self.values(BASELINE, figure)],
                    "new_rounds": [_rounded(v) for v in self.values(NEW, figure)],
                }
                for figure, unit in self.units.items()
            ],
            "records": self.records,
            "ceilings": self.ceilings.to_json() if self.ceilings else None,
            "disk_floor": self.floor.to_json() if self.floor else None,
            "failures": self.failures,
        }


def _rounded(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# -- the baseline's code -------------------------------------------------------------------


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def working_tree_commit() -> str:
    """HEAD, marked ``+changes`` when the tree differs from it (what the new side runs)."""
    head = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return f"{head}+changes" if dirty else head


@contextmanager
def baseline_tree(rev: str, parent: Path) -> Iterator[tuple[Path, str]]:
    """REV checked out, detached, in ``parent/baseline-src``: (folder, commit). The worktree
    is removed after the block, whatever happens."""
    commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    path = parent / "baseline-src"
    say(f"checking out {rev} ({commit[:10]}) into {path}")
    _git("worktree", "add", "--detach", str(path), commit)
    try:
        yield path, commit
    finally:
        say(f"removing the worktree {path}")
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
            capture_output=True,
            check=False,
        )
        subprocess.run(["git", "-C", str(ROOT), "worktree", "prune"], check=False)


def side_env(src: Path) -> dict[str, str]:
    """The environment that makes a child import diststorage from ``src``."""
    inherited = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": str(src) if not inherited else f"{src}{os.pathsep}{inherited}"}


def imported_from(env: dict[str, str], cwd: Path) -> str:
    """Where a child with ``env`` imports diststorage from."""
    done = subprocess.run(
        [sys.executable, "-c", "import diststorage; print(diststorage.__file__)"],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def knows_workers(env: dict[str, str], cwd: Path) -> bool:
    """Whether a child with ``env`` runs a gateway that takes ``--workers`` (a tree from
    before it has one process, which is what ``--workers 1`` runs)."""
    done = subprocess.run(
        [sys.executable, "-m", "diststorage", "gateway", "--help"],
        env={**os.environ, **env, "COLUMNS": "200"},
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return "--workers" in done.stdout


def _check_gateway_env(running: RunningSide, src: Path) -> None:
    """The side's running gateway was started with its ``src`` first on PYTHONPATH."""
    pid = running.cluster.gateway_pids()[0]
    path = psutil.Process(pid).environ().get("PYTHONPATH", "")
    if path.split(os.pathsep)[0] != str(src):
        raise RuntimeError(f"{running.side.name}'s gateway runs with PYTHONPATH={path!r}")


# -- one round of one side -----------------------------------------------------------------


def _record_phase(
    run: BaselineRun, side: str, figures: dict[str, float], what: str, size: int, phase: PhaseStats
) -> None:
    per_gib = phase.cpu_per_gib(size)
    for group in GROUPS:
        _put(run, figures, f"{what} CPU s/GiB {group}", per_gib[group], "s/GiB")
    _put(run, figures, f"{what} gateway VmHWM", phase.gateway_peak_rss / MIB, "MiB")
    _put(run, figures, f"{what} node max VmHWM", phase.node_max_peak_rss / MIB, "MiB")


def _put(run: BaselineRun, figures: dict[str, float], name: str, value: float, unit: str) -> None:
    figures[name] = value
    run.units.setdefault(name, unit)


def _large_transfers(
    run: BaselineRun,
    running: RunningSide,
    figures: dict[str, float],
    n: int,
    size: int,
    source: tuple[Path, str],
) -> None:
    side, cluster, sampler = running.side.name, running.cluster, running.sampler
    path, md5 = source
    label = size_label(size)
    key = f"baseline-run-{size}-{n}"
    settle()
    say(f"{side}: upload {label}, round {n + 1}")
    with sampler.phase(f"{side} upload {label} #{n + 1}") as phase:
        up = curl_upload(cluster.url, key, path, size, md5)
    run.records[side].append({**up.to_json(), "round": n, "phase": phase.to_json()})
    if not up.ok:
        run.fail(f"{side} upload {label}, round {n + 1}: {up.detail}")
        return
    _put(run, figures, f"upload {label}", up.mb_s, "MB/s")
    _record_phase(run, side, figures, f"upload {label}", size, phase)
    settle()
    say(f"{side}: download {label}, round {n + 1}")
    headers = path.with_suffix(f".{side}.headers")
    with sampler.phase(f"{side} download {label} #{n + 1}") as phase:
        down, etag = curl_download(cluster.url, key, Path(os.devnull), headers, size)
    headers.unlink(missing_ok=True)
    if down.status == 200 and not down.detail:
        check_download(down, None, etag, md5)
    run.records[side].append({**down.to_json(), "round": n, "phase": phase.to_json()})
    if not down.ok:
        run.fail(f"{side} download {label}, round {n + 1}: {down.detail}")
        return
    _put(run, figures, f"download {label}", down.mb_s, "MB/s")
    _record_phase(run, side, figures, f"download {label}", size, phase)


def _small_ops(
    run: BaselineRun,
    running: RunningSide,
    figures: dict[str, float],
    n: int,
    runner: asyncio.Runner,
) -> None:
    config = run.config
    side, url, sampler = running.side.name, running.cluster.url, running.sampler
    base = random.Random(4096).randbytes(OBJECT_BYTES)
    timed = Budget(config.ops_seconds, config.max_ops)
    warmup = Budget(config.ops_warmup_s, config.max_ops)
    for concurrency in OPS_CONCURRENCIES:
        prefix = f"ops-r{n}-c{concurrency}"
        settle()
        say(f"{side}: 4 KiB PUT and GET, concurrency {concurrency}, round {n + 1}")
        put, written, put_phase = runner.run(
            put_case(
                [url],
                base,
                prefix,
                concurrency,
                timed,
                warmup,
                functools.partial(sampler.phase, f"{side} PUT c={concurrency} #{n + 1}"),
            )
        )
        get, get_phase = runner.run(
            get_case(
                [url],
                base,
                prefix,
                written,
                concurrency,
                timed,
                warmup,
                functools.partial(sampler.phase, f"{side} GET c={concurrency} #{n + 1}"),
            )
        )
        for result, phase in ((put, put_phase), (get, get_phase)):
            run.records[side].append({**result.to_json(), "round": n, "phase": phase.to_json()})
            what = f"{result.op} 4 KiB c={concurrency}"
            if result.errors:
                first = result.first_error
                run.fail(f"{side} {what}, round {n + 1}: {result.errors} errors, first: {first}")
                continue
            _put(run, figures, f"{what} ops/s", result.ops_per_s, "ops/s")
            _put(run, figures, f"{what} p50", result.percentile_ms(0.5), "ms")
            _put(run, figures, f"{what} p99", result.percentile_ms(0.99), "ms")
            gateway_ms = phase.gateway_cpu_s * 1000 / max(1, result.ops)
            _put(run, figures, f"{what} gateway CPU", gateway_ms, "ms/op")


# -- the run -------------------------------------------------------------------------------


def run_baseline(run: BaselineRun, workdir: Path) -> None:
    config = run.config
    sources: dict[int, tuple[Path, str]] = {}
    for size in config.sizes:
        path = workdir / f"source-{size}.bin"
        say(f"generating {size_label(size)} of random data")
        sources[size] = (path, write_random_file(path, size, seed=size))
    run.new_commit = working_tree_commit()
    with baseline_tree(config.rev, workdir) as (tree, commit):
        run.baseline_commit = commit
        srcs = {BASELINE: tree / "src", NEW: ROOT / "src"}
        sides = []
        for name, src in srcs.items():
            compile_sources(src)
            env = side_env(src)
            run.imports[name] = imported_from(env, workdir)
            if not Path(run.imports[name]).is_relative_to(src):
                raise RuntimeError(f"{name} imports {run.imports[name]}, not from {src}")
            say(f"{name}: diststorage from {run.imports[name]}")
            workers = 1 if knows_workers(env, workdir) else None
            sides.append(Side(name, env, config.gateway_args.get(name, ()), workers=workers))
        say(f"disk floor: {size_label(int(config.size * 1.5))} as fsync'd 4 MiB files")
        run.floor = measure_disk_floor(workdir / "floor", config.size)
        run.ceilings = measure_ceilings(workdir, sources[config.size][0])
        for failure in run.ceilings.failures:
            run.fail(failure)
        with (
            running_sides(workdir, sides) as running,
            asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner,
        ):
            for name, src in srcs.items():
                _check_gateway_env(running[name], src)
            for n, name in turns(config.rounds, [BASELINE, NEW]):
                figures: dict[str, float] = {}
                for size in config.sizes:
                    _large_transfers(run, running[name], figures, n, size, sources[size])
                _small_ops(run, running[name], figures, n, runner)
                run.rounds[name].append(figures)
    for path, _ in sources.values():
        path.unlink(missing_ok=True)
