"""What a run measures (profiles), its targets, and what it found (records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.common.cli import say
from bench.common.sampler import PhaseStats

MIB = 1 << 20
GIB = 1 << 30
NODES = 6
REDUNDANCY = "ec:4+2"
BUCKET = "default"  # the bucket the native API serves, so both fronts share one namespace

# The issue's targets: S3 throughput against the native API's on the same cluster and run.
TARGET_TRANSFER_PCT = 85.0
TARGET_OPS_PCT = 70.0
# Bounded memory: the transfer suite's figure for the gateway during a big upload.
TARGET_MULTIPART_RSS_MIB = 150.0


@dataclass(frozen=True)
class Profile:
    name: str
    transfer_bytes: int
    transfer_rounds: int  # each round: every client up, then every client down, in turn
    ops_seconds: float  # time budget of each 4 KiB case
    ops_warmup_s: float
    ops_rounds: int  # each round: native and S3, PUT then GET, in alternating order
    ops_concurrency: int
    multipart_part_bytes: int  # the RSS case: the source file in these parts
    multipart_in_flight: int
    signing_requests: int  # signed requests per signature case
    transfers_only: bool = False  # just the large transfers: no memory, 4 KiB or signing case


FULL = Profile(
    name="full",
    transfer_bytes=GIB,
    transfer_rounds=2,
    ops_seconds=10.0,
    ops_warmup_s=1.0,
    ops_rounds=2,
    ops_concurrency=16,
    multipart_part_bytes=16 * MIB,
    multipart_in_flight=10,
    signing_requests=20_000,
)
QUICK = Profile(
    name="quick",
    transfer_bytes=256 * MIB,
    transfer_rounds=2,
    ops_seconds=3.0,
    ops_warmup_s=0.5,
    ops_rounds=2,
    ops_concurrency=16,
    multipart_part_bytes=16 * MIB,
    multipart_in_flight=10,
    signing_requests=5_000,
)


@dataclass
class TransferRun:
    """One timed transfer of one client, checked."""

    client: str  # "native", "boto3", "aws-cli"
    direction: str  # "upload", "download"
    size: int
    seconds: float
    ok: bool
    detail: str
    phase: PhaseStats

    @property
    def mb_s(self) -> float:
        return self.size / self.seconds / 1e6 if self.ok and self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "client": self.client,
            "direction": self.direction,
            "bytes": self.size,
            "seconds": round(self.seconds, 3),
            "mb_s": round(self.mb_s, 1),
            "ok": self.ok,
            "detail": self.detail,
            "gateway_peak_rss_mib": round(self.phase.gateway_peak_rss / MIB, 1),
            "gateway_cpu_s": round(self.phase.gateway_cpu_s, 2),
        }


@dataclass
class OpsRun:
    """One timed 4 KiB case of one front."""

    front: str  # "native", "S3"
    op: str  # "PUT", "GET"
    ops: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    first_error: str
    phase: PhaseStats

    @property
    def ops_per_s(self) -> float:
        return self.ops / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        gateway_ms_per_op = self.phase.gateway_cpu_s * 1000 / self.ops if self.ops else None
        return {
            "front": self.front,
            "op": self.op,
            "ops": self.ops,
            "errors": self.errors,
            "seconds": round(self.seconds, 3),
            "ops_per_s": round(self.ops_per_s, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "gateway_cpu_ms_per_op": None
            if gateway_ms_per_op is None
            else round(gateway_ms_per_op, 3),
            "client_cpu_s": round(self.phase.client_cpu_s, 2),
            "first_error": self.first_error,
        }


@dataclass
class MemoryCase:
    """The gateway's memory around a multipart upload with many parts in flight."""

    size: int
    part_bytes: int
    in_flight: int
    seconds: float
    ok: bool
    detail: str
    rss_before: int  # VmRSS before the upload
    sampled_peak: int  # the highest VmRSS sampled every 50 ms during the upload
    hwm_after: int  # VmHWM after it: the gateway's peak since it started
    phase: PhaseStats


@dataclass
class SigningCase:
    """In-process cost of parse_authentication + verify over many signed requests."""

    name: str
    requests: int
    seconds: float

    @property
    def us_per_request(self) -> float:
        return self.seconds / self.requests * 1e6 if self.requests else 0.0


@dataclass
class Results:
    profile: Profile
    transfers: list[TransferRun] = field(default_factory=list)
    ops: list[OpsRun] = field(default_factory=list)
    memory: MemoryCase | None = None
    signing: list[SigningCase] = field(default_factory=list)
    idle: PhaseStats | None = None
    failures: list[str] = field(default_factory=list)
    log_issues: dict[str, Any] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        say(f"FAILED: {message}")
        self.failures.append(message)
