"""Starting a chunk file's writeback early, so that its fsync at commit finds little left.

Linux begins writing dirty pages in the background only once they pass
``vm.dirty_background_ratio`` of memory, gigabytes on a large machine. Until then a chunk
being streamed stays in memory whole, and its fsync at commit writes all of it while the
upload waits: under ec:4+2, six 64 MiB chunks at once at each segment's end. Asking for
writeback after every block keeps the disks writing while the blocks arrive. 1 GiB uploads
went from 277 to 305 MB/s (means of 12 alternating runs on a 6-node loopback cluster).

``sync_file_range`` is not in Python's ``os`` module; it is called through ctypes.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

from diststorage.core.libc import linux_libc

SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    function = getattr(linux_libc(), "sync_file_range", None)
    if function is None:
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


_SYNC_FILE_RANGE = _sync_file_range()


def start_writeback(fd: int) -> bool:
    """Asks the kernel to start writing the file's dirty pages now, without waiting for them.

    Only a hint: durability still comes from the fsync at commit, which reports any error.
    Returns whether the kernel took it (False where the call does not exist).
    """
    if _SYNC_FILE_RANGE is None:
        return False
    # Offset 0 and length 0: the whole file.
    return _SYNC_FILE_RANGE(fd, 0, 0, SYNC_FILE_RANGE_WRITE) == 0
