"""Small files that must survive a crash: written whole or not at all, and then kept.

A rename is atomic but not durable until the directory holding it is fsynced; a file's bytes
are not durable until the file is. ``replace_durably`` does both, in the order that leaves
either the old file or the complete new one after a crash, never a torn one.
"""

from __future__ import annotations

import os
from pathlib import Path

from diststorage.core.filemodes import PRIVATE_FILE_MODE


def fsync_dir(path: Path) -> None:
    """Makes the directory's entries (files created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(path: Path, data: bytes, mode: int = PRIVATE_FILE_MODE) -> None:
    """Writes ``data`` to ``path`` through a temp file beside it: fsync, rename, fsync dir.

    The file has exactly ``mode`` (owner-only unless told otherwise, see core/filemodes.py)
    from the moment it exists, whatever the umask."""
    temp = path.with_name(path.name + ".tmp")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    os.fchmod(fd, mode)
    with open(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    fsync_dir(path.parent)
