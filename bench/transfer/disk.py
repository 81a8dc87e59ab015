"""The disk floor: how fast this filesystem takes the bytes an upload has to write.

An ec:4+2 upload writes 1.5× its size in shard files, each fsynced and renamed into place.
Doing the same with plain 4 MiB files (write, fsync, rename; one after another, no directory
fsync) bounds what the store can reach on this disk; the upload is reported as a share of it.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MIB = 1 << 20
FILE_BYTES = 4 * MIB


@dataclass
class DiskFloor:
    object_bytes: int
    written_bytes: int
    files: int
    seconds: float

    @property
    def raw_mb_s(self) -> float:
        return self.written_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    @property
    def object_mb_s(self) -> float:
        """Object bytes per second: the upload rate this disk allows at 1.5× amplification."""
        return self.object_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "object_bytes": self.object_bytes,
            "written_bytes": self.written_bytes,
            "files": self.files,
            "file_bytes": FILE_BYTES,
            "seconds": round(self.seconds, 3),
            "raw_mb_per_s": round(self.raw_mb_s, 1),
            "object_mb_per_s": round(self.object_mb_s, 1),
        }


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        written = os.write(fd, data)
        data = data[written:]


def measure_disk_floor(directory: Path, object_bytes: int, amplification: float = 1.5) -> DiskFloor:
    """Writes ``amplification × object_bytes`` as fsynced 4 MiB files in ``directory`` (created
    here, removed afterwards) and times it."""
    total = int(object_bytes * amplification)
    buffer = memoryview(random.Random(7).randbytes(FILE_BYTES))
    directory.mkdir(parents=True, exist_ok=False)
    try:
        os.sync()
        written = 0
        files = 0
        started = time.perf_counter()
        while written < total:
            size = min(FILE_BYTES, total - written)
            temporary = directory / f"{files:06d}.tmp"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                _write_all(fd, buffer[:size])
                os.fsync(fd)
            finally:
                os.close(fd)
            temporary.rename(directory / f"{files:06d}")
            written += size
            files += 1
        seconds = time.perf_counter() - started
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return DiskFloor(object_bytes, written, files, seconds)
