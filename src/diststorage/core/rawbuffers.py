"""Buffers about to be overwritten whole, allocated without zeroing them first.

``bytearray(n)`` zeroes its n bytes, and so do the ``cryptography`` package's AEAD results
(pyo3 fills a new ``bytes`` with zeros before the cipher writes into it). For a block sealed
or opened on the data link that is a pass over a MiB of cold memory before the real one:
``memset`` was 6 % of a gateway's CPU samples during a download. CPython's C API makes a
bytearray without touching its bytes (``PyByteArray_FromStringAndSize(NULL, n)``), which
``ctypes.pythonapi`` reaches; ``encrypt_into`` and ``decrypt_into`` then fill it. Written by
hand because no library offers it short of numpy's ``empty``, a dependency of tens of MiB for
one call.

Only for buffers filled whole before anything reads them: otherwise whatever the heap held
there before would be read.
"""

from __future__ import annotations

import ctypes
from typing import cast

_new_bytearray = ctypes.pythonapi.PyByteArray_FromStringAndSize
_new_bytearray.restype = ctypes.py_object
_new_bytearray.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)


def unfilled_bytearray(size: int) -> bytearray:
    """A bytearray of ``size`` bytes whose contents are whatever the allocator left there."""
    if size < 0:
        raise ValueError(f"a buffer of {size} bytes")
    return cast(bytearray, _new_bytearray(None, size))
