"""What the transfer benchmark runs (its profiles) and what it found (its records)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from bench.common.cli import (
    say,
)
from bench.common.curl import (
    Transfer,
)
from bench.common.ops import OpsResult
from bench.common.report import (
    GIB,
    MIB,
)
from bench.common.sampler import PhaseStats
from bench.transfer.ceilings import Ceilings
from bench.transfer.disk import DiskFloor

NODES = 6
REDUNDANCY = "ec:4+2"
CONCURRENCIES = (1, 16)
BUSY_MACHINE_PCT = 15.0

TARGET_UPLOAD_MB_S = 250.0
TARGET_UPLOAD_FLOOR_PCT = 70.0
TARGET_DOWNLOAD_MB_S = 500.0
TARGET_GATEWAY_RSS_MIB = 150.0
TARGET_PUT_OPS_C16 = 1000.0
TARGET_GET_OPS_C16 = 3000.0


@dataclass(frozen=True)
class Profile:
    name: str
    transfer_sizes: tuple[int, ...]
    small_repeats: int
    stream_size: int
    ops_seconds: float
    ops_warmup_s: float
    max_ops: int = 1_000_000

    def repeats(self, size: int) -> int:
        return self.small_repeats if size < 256 * MIB else 1


FULL = Profile("full", (64 * MIB, 1 * GIB), 3, 4 * GIB, 10.0, 1.0)
QUICK = Profile("quick", (64 * MIB, 256 * MIB), 3, 1 * GIB, 3.0, 0.5)


@dataclass
class TransferRecord:
    transfer: Transfer
    phase: PhaseStats
    repeat: int


@dataclass
class OpsRecord:
    result: OpsResult
    phase: PhaseStats


@dataclass
class RssCase:
    label: str
    size: int
    method: str
    phase: PhaseStats


@dataclass
class Results:
    profile: Profile
    transfers: list[TransferRecord] = field(default_factory=list)
    floors: dict[int, list[DiskFloor]] = field(default_factory=dict)
    ops: list[OpsRecord] = field(default_factory=list)
    rss: list[RssCase] = field(default_factory=list)
    idle: PhaseStats | None = None
    # Measured right before the largest transfers, for an object of their size.
    ceilings: Ceilings | None = None
    failures: list[str] = field(default_factory=list)
    log_issues: dict[str, Any] = field(default_factory=dict)
    load_at_start: list[float] = field(default_factory=lambda: [*os.getloadavg()])

    def fail(self, message: str) -> None:
        self.failures.append(message)
        say(f"!!! FAILURE: {message}")
