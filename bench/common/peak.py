"""A process's peak resident memory over a block of code, from the kernel rather than sampled.

The kernel keeps each process's high-water mark of resident memory (``VmHWM`` in
``/proc/<pid>/status``); writing ``5`` to ``/proc/<pid>/clear_refs`` resets it to the current
resident size. Reset right before a transfer and read right after, it is the exact peak of that
transfer, where a sampler polling every 50 ms can miss a short one.
"""

from __future__ import annotations

from contextlib import suppress
from pathlib import Path

HWM_FIELD = "VmHWM:"
RSS_FIELD = "VmRSS:"
RESET_PEAK = b"5"


def proc_status_bytes(pid: int, field: str) -> int:
    """A memory field of /proc/<pid>/status (``VmRSS:``, ``VmHWM:``) in bytes; 0 if the process
    is gone or the field is missing."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak(pid: int) -> bool:
    """Resets the process's VmHWM to its current RSS; False if the kernel refused (a process
    of another user, or gone)."""
    with suppress(OSError):
        Path(f"/proc/{pid}/clear_refs").write_bytes(RESET_PEAK)
        return True
    return False


def peak_bytes(pid: int) -> int:
    """The process's VmHWM: its peak RSS since start or since the last ``reset_peak``."""
    return proc_status_bytes(pid, HWM_FIELD)
