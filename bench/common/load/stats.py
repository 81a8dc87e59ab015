"""What the chaos load did, phase by phase: operations, errors, bytes moved, CPU, problems.

A phase is a stretch of the run (seed, baseline, chaos, …). Operations count in the phase in
which they finish; bytes count in the phase in which they move, so a phase's MB/s is exact
even when a 150 MiB transfer straddles its boundaries. The bytes of an operation that failed
are also counted as wasted, in the phases where they moved.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MB = 1_000_000
MAX_PROBLEMS = 50


@dataclass
class PhaseLoad:
    name: str
    started_s: float
    ended_s: float | None = None
    ops: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    read_failures: int = 0
    # Of those, reads of objects written while a fault was held (written degraded, maybe).
    read_failures_degraded: int = 0
    md5_mismatches: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    # Bytes (up or down) moved in this phase by operations that failed: of no use.
    bytes_wasted: int = 0
    client_cpu_s: float = 0.0
    gateway_cpu_s: float = 0.0

    @property
    def wall_s(self) -> float:
        return 0.0 if self.ended_s is None else self.ended_s - self.started_s

    @property
    def mb_s(self) -> float | None:
        """Bytes moved both ways per second, whether their operation succeeded or not."""
        if self.wall_s <= 0:
            return None
        return (self.bytes_up + self.bytes_down) / MB / self.wall_s

    @property
    def wasted_mb_s(self) -> float:
        return self.bytes_wasted / MB / self.wall_s if self.wall_s > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        wall = self.wall_s

        def per_s(value: float) -> float | None:
            return round(value / MB / wall, 2) if wall > 0 else None

        return {
            "phase": self.name,
            "started_s": round(self.started_s, 2),
            "wall_s": round(wall, 2),
            "ops": dict(sorted(self.ops.items())),
            "errors": dict(self.errors.most_common()),
            "read_failures": self.read_failures,
            "read_failures_of_objects_written_under_faults": self.read_failures_degraded,
            "md5_mismatches": self.md5_mismatches,
            "bytes_up": self.bytes_up,
            "bytes_down": self.bytes_down,
            "bytes_of_failed_ops": self.bytes_wasted,
            "mb_s": per_s(self.bytes_up + self.bytes_down),
            "up_mb_s": per_s(self.bytes_up),
            "down_mb_s": per_s(self.bytes_down),
            "client_cpu_s": round(self.client_cpu_s, 2),
            "gateway_cpu_s": round(self.gateway_cpu_s, 2),
        }


@dataclass
class LoadStats:
    """The phases of one run. ``gateway_cpu_s`` reads the gateway's CPU time so far."""

    gateway_cpu_s: Callable[[], float]
    clock: Callable[[], float] = time.monotonic
    started_at: float = field(default_factory=time.monotonic)
    phases: list[PhaseLoad] = field(default_factory=list)
    problems: list[dict[str, Any]] = field(default_factory=list)
    moved_bytes: int = 0  # up and down, over the whole run
    error_count: int = 0  # over the whole run
    _cpu_marks: tuple[float, float] = (0.0, 0.0)

    def now_s(self) -> float:
        """Seconds since the run started."""
        return self.clock() - self.started_at

    @property
    def current(self) -> PhaseLoad:
        assert self.phases, "begin a phase first"
        return self.phases[-1]

    def begin(self, name: str) -> PhaseLoad:
        self.end()
        self.phases.append(PhaseLoad(name, self.now_s()))
        self._cpu_marks = (time.process_time(), self.gateway_cpu_s())
        return self.current

    def end(self) -> None:
        if not self.phases or self.current.ended_s is not None:
            return
        phase = self.current
        phase.ended_s = self.now_s()
        client_mark, gateway_mark = self._cpu_marks
        phase.client_cpu_s = time.process_time() - client_mark
        phase.gateway_cpu_s = self.gateway_cpu_s() - gateway_mark

    def phase(self, name: str) -> PhaseLoad | None:
        return next((p for p in self.phases if p.name == name), None)

    # -- recording, called by the load ----------------------------------------------------------

    def sent(self, size: int, moved: Counter[int]) -> None:
        """``size`` bytes went up; ``moved`` (the operation's bytes by phase) notes where."""
        self.current.bytes_up += size
        self.moved_bytes += size
        moved[len(self.phases) - 1] += size

    def received(self, size: int, moved: Counter[int]) -> None:
        self.current.bytes_down += size
        self.moved_bytes += size
        moved[len(self.phases) - 1] += size

    def wasted(self, moved: Counter[int]) -> None:
        """The operation that moved ``moved`` failed: its bytes were of no use."""
        for index, size in moved.items():
            self.phases[index].bytes_wasted += size

    def done(self, op: str) -> None:
        self.current.ops[op] += 1

    def error(self, kind: str) -> None:
        self.current.errors[kind] += 1
        self.error_count += 1

    def read_failure(self, op: str, key: str, detail: str, written_under_fault: bool) -> None:
        self.current.read_failures += 1
        if written_under_fault:
            self.current.read_failures_degraded += 1
            detail += " (written while a fault was held)"
        self._problem("read failure", op, key, detail)

    def md5_mismatch(self, op: str, key: str, detail: str) -> None:
        self.current.md5_mismatches += 1
        self._problem("md5 mismatch", op, key, detail)

    def _problem(self, what: str, op: str, key: str, detail: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(
                {
                    "t_s": round(self.now_s(), 2),
                    "phase": self.current.name,
                    "what": what,
                    "op": op,
                    "key": key,
                    "detail": detail,
                }
            )

    # -- totals -----------------------------------------------------------------------------

    def total_ops(self) -> Counter[str]:
        return sum((p.ops for p in self.phases), Counter())

    def total_errors(self) -> Counter[str]:
        return sum((p.errors for p in self.phases), Counter())

    @property
    def read_failures(self) -> int:
        return sum(p.read_failures for p in self.phases)

    @property
    def read_failures_degraded(self) -> int:
        return sum(p.read_failures_degraded for p in self.phases)

    @property
    def md5_mismatches(self) -> int:
        return sum(p.md5_mismatches for p in self.phases)
