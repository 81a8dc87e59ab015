"""Owner-only modes for what the daemons keep on disk, whatever the umask.

Chunk files hold object bytes (a data shard is plaintext after its header, a replica is the
whole object) and the SQLite metadata file holds small objects whole: on a host shared with
other users, the default umask (022) would make every one of them world-readable. So every
folder a daemon creates is 0700 and every file 0600, set explicitly: ``mkdir``'s and
``open``'s modes are masked by the umask, which only removes bits, so they are created with
the owner's bits alone (never more open than meant, even for a moment) and then ``chmod`` /
``fchmod`` makes the mode exact whatever the umask took away.

Folders and files that exist already keep their mode: a data folder may be a volume whose
root belongs to the operator (Kubernetes' fsGroup), which this process may not even chmod.
"""

from __future__ import annotations

import os
from pathlib import Path

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def make_private_dir(path: Path) -> None:
    """Creates ``path`` and its missing parents, each 0700; an existing folder is left as is."""
    missing: list[Path] = []
    folder = path
    while not folder.exists():
        missing.append(folder)
        folder = folder.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process: its mode is its maker's
        os.chmod(folder, PRIVATE_DIR_MODE)


def open_private_file(path: Path, flags: int) -> int:
    """``os.open(path, flags | O_CREAT)``; a file it creates is 0600 from its first moment.

    Returns the descriptor. An existing file keeps its mode (its contents are the caller's
    to replace or append to)."""
    try:
        return os.open(path, flags & ~os.O_CREAT)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    except FileExistsError:
        return os.open(path, flags & ~os.O_CREAT)
    os.fchmod(fd, PRIVATE_FILE_MODE)
    return fd


def create_private_file(path: Path) -> None:
    """Creates ``path`` empty and 0600 unless it exists (for a file another library opens)."""
    os.close(open_private_file(path, os.O_RDONLY))
