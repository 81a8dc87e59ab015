"""What makes a gateway process one worker of several: its index, how many there are, the
private folder their sibling sockets live in, and its parent (the supervisor).

The supervisor hands each worker its role and its settings as one JSON document on the
worker's stdin (``WorkerHandoff``), never on its argv (every local user can read a command
line, and the settings may hold the root key's secret) nor its environment.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# prctl(2): the signal the kernel sends this process when its parent dies.
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class WorkerRole:
    index: int
    count: int
    run_dir: Path
    """Owner-only (0700) folder of the workers' sibling sockets, made by the supervisor."""
    parent_pid: int

    def __post_init__(self) -> None:
        assert 0 <= self.index < self.count

    def socket_path(self, index: int) -> Path:
        return self.run_dir / f"w{index}.sock"

    def ready_path(self, index: int) -> Path:
        """Made by worker ``index`` once it serves; the supervisor waits for the first's."""
        return self.run_dir / f"w{index}.ready"

    @property
    def siblings(self) -> list[int]:
        return [i for i in range(self.count) if i != self.index]

    def lease_holder(self, gateway_id: str) -> str:
        """This worker's name in the workers' lease: each worker is a contender of its own,
        so repair and garbage collection run in exactly one process of the cluster."""
        return f"{gateway_id}.{self.index}"

    def share(self, total: int) -> int:
        """This worker's share of a gateway-wide limit (connections spread over the workers
        by the kernel's SO_REUSEPORT hash): the total over the count, rounded up, at least 1."""
        return max(1, -(-total // self.count))


@dataclass(frozen=True, slots=True)
class WorkerHandoff:
    role: WorkerRole
    settings: dict[str, Any]
    """The gateway's settings by field name, secrets revealed (GatewaySettings(**settings))."""

    def encode(self) -> bytes:
        role = self.role
        return json.dumps(
            {
                "role": {
                    "index": role.index,
                    "count": role.count,
                    "run_dir": str(role.run_dir),
                    "parent_pid": role.parent_pid,
                },
                "settings": self.settings,
            }
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> WorkerHandoff:
        document = json.loads(raw)
        role = document["role"]
        return cls(
            WorkerRole(
                index=int(role["index"]),
                count=int(role["count"]),
                run_dir=Path(role["run_dir"]),
                parent_pid=int(role["parent_pid"]),
            ),
            dict(document["settings"]),
        )


def die_with_parent(parent_pid: int) -> None:
    """Has the kernel SIGKILL this process when its parent dies (Linux), so that a killed
    supervisor leaves no worker holding its ports; exits at once if the parent is gone
    already (it died before the request was made)."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is not None:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)
