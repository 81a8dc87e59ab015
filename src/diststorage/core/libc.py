"""The C library, for the few Linux calls Python's standard library does not wrap."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys


@functools.cache
def linux_libc() -> ctypes.CDLL | None:
    """The C library on Linux; None elsewhere, or when it cannot be found."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name is not None else None
