"""Allocator settings for daemons that move large buffers through several threads.

glibc raises its mmap threshold after the first large free, so 1–4 MiB stripe and block
buffers then come from per-thread heaps that fragment and rarely shrink: a gateway's RSS grew
by ~100 MiB during a long upload that way. Pinning the threshold keeps large buffers in their
own mappings, returned to the system the moment they are freed; capping arenas bounds the
per-thread heaps that gRPC's and the executor's threads would each grow.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
LARGE_BUFFER_BYTES = 128 * 1024
ARENAS = 2


def tune_allocator() -> bool:
    """Applies the settings where the C library is glibc; returns whether it did."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    if not hasattr(libc, "mallopt"):
        return False
    return bool(
        libc.mallopt(M_MMAP_THRESHOLD, LARGE_BUFFER_BYTES)
        and libc.mallopt(M_TRIM_THRESHOLD, 4 * LARGE_BUFFER_BYTES)
        and libc.mallopt(M_ARENA_MAX, ARENAS)
    )
