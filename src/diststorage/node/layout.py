"""Where things live in a node's data directory, and the blocking helpers that touch it.

::

    DATA/node.json              {"node_id": "<32 hex>"}, created once, kept forever
    DATA/lock                   flock'ed while a node process owns DATA
    DATA/scrub.json             where the scrubber is in its pass (see scrubstate.py)
    DATA/chunks/<ab>/<abcd…>    committed chunk files, fanned out by the first two hex digits
    DATA/tmp/<chunk_id>.tmp     chunks being written; whatever is here at startup is garbage

Every function here blocks; callers run them off the event loop.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

from diststorage.core.durable import fsync_dir
from diststorage.core.errors import InvalidRequest
from diststorage.core.filemodes import make_private_dir, open_private_file
from diststorage.core.identity import load_or_create_identity
from diststorage.core.ids import is_valid_id
from diststorage.node.chunkfile import data_bytes_or_file_size

log = logging.getLogger(__name__)

_HEX = "0123456789abcdef"
FANOUT = tuple(a + b for a in _HEX for b in _HEX)


def check_chunk_id(chunk_id: str) -> str:
    """The only gate between a chunk id from the wire and a file name."""
    if not is_valid_id(chunk_id):
        raise InvalidRequest(f"chunk id {chunk_id[:80]!r} is not 32 lowercase hex digits")
    return chunk_id


class DiskSpace(NamedTuple):
    total_bytes: int
    free_bytes: int


def measure_disk_space(path: Path) -> DiskSpace:
    usage = shutil.disk_usage(path)
    return DiskSpace(usage.total, usage.free)


@dataclass(frozen=True, slots=True)
class ChunkInfo:
    chunk_id: str
    size_bytes: int
    """Data bytes (as acknowledged by PutChunk); the file size if the trailer is unreadable."""
    mtime: float


ChunkListing = tuple[list[ChunkInfo], bool]
"""(chunks, truncated): truncated means more chunks follow the last one returned."""


class ChunkPaths(NamedTuple):
    temp: Path
    """Where the chunk is written until it is committed."""
    final: Path
    """Where the committed chunk lives."""


@dataclass(frozen=True, slots=True)
class ScanResult:
    used_bytes: int
    chunk_count: int
    removed_temp_files: int


class DataLayout:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.chunks_dir = root / "chunks"
        self.tmp_dir = root / "tmp"
        self.identity_path = root / "node.json"
        self.scrub_state_path = root / "scrub.json"
        self._lock_file: IO[bytes] | None = None

    def chunk_path(self, chunk_id: str) -> Path:
        """Where the committed chunk lives; raises InvalidRequest for a malformed id."""
        return self.chunks_dir / chunk_id[:2] / check_chunk_id(chunk_id)

    def chunk_paths(self, chunk_id: str) -> ChunkPaths:
        """Both files of a chunk being written; raises InvalidRequest for a malformed id.

        The id is checked once, here, for the whole write path.
        """
        final = self.chunk_path(chunk_id)
        return ChunkPaths(temp=self.tmp_dir / f"{chunk_id}.tmp", final=final)

    def prepare(self) -> None:
        """Creates the directory tree (once) and takes the lock that makes this process its owner.

        Two node processes on one directory would each keep their own accounting and delete
        each other's temp files, so the second one refuses to start.
        """
        make_private_dir(self.root)
        lock_fd = open_private_file(self.root / "lock", os.O_WRONLY | os.O_APPEND)
        lock_file = open(lock_fd, "ab")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            lock_file.close()
            raise RuntimeError(f"{self.root} is in use by another node process") from exc
        self._lock_file = lock_file
        created = False
        for directory in (self.chunks_dir, self.tmp_dir, *self._fanout_dirs()):
            if not directory.is_dir():
                make_private_dir(directory)
                created = True
        if created:
            fsync_dir(self.chunks_dir)
            fsync_dir(self.root)

    def release(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def load_or_create_node_id(self) -> str:
        """Raises DataLoss if node.json exists but holds no valid node id."""
        return load_or_create_identity(self.identity_path, key="node_id")

    def scan(self) -> ScanResult:
        """Removes stale temp files and adds up the committed chunks."""
        removed = 0
        for entry in os.scandir(self.tmp_dir):
            os.unlink(entry.path)
            removed += 1
        used = count = 0
        for prefix in FANOUT:
            for entry in os.scandir(self.chunks_dir / prefix):
                if not (is_valid_id(entry.name) and entry.name.startswith(prefix)):
                    log.warning("ignoring stray file %s", entry.path)
                    continue
                used += entry.stat().st_size
                count += 1
        return ScanResult(used, count, removed)

    def list_chunks(self, after: str, limit: int) -> ChunkListing:
        ids = self._ids_after(after, limit + 1)
        chunks: list[ChunkInfo] = []
        for chunk_id in ids[:limit]:
            path = self.chunk_path(chunk_id)
            try:
                st = os.stat(path)
                size = data_bytes_or_file_size(path, st.st_size)
            except FileNotFoundError:
                continue  # deleted since the directory was listed
            chunks.append(ChunkInfo(chunk_id, size, st.st_mtime))
        return chunks, len(ids) > limit

    def _ids_after(self, after: str, limit: int) -> list[str]:
        """Up to ``limit`` committed chunk ids greater than ``after``, in order."""
        ids: list[str] = []
        for prefix in FANOUT:
            if prefix < after[:2]:
                continue
            names = sorted(
                name
                for name in os.listdir(self.chunks_dir / prefix)
                if name > after and is_valid_id(name) and name.startswith(prefix)
            )
            ids.extend(names[: limit - len(ids)])
            if len(ids) >= limit:
                break
        return ids

    def _fanout_dirs(self) -> list[Path]:
        return [self.chunks_dir / prefix for prefix in FANOUT]
