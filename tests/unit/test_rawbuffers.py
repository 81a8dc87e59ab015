"""Unzeroed buffers (core/rawbuffers.py)."""

from __future__ import annotations

import pytest

from diststorage.core.rawbuffers import unfilled_bytearray


@pytest.mark.parametrize("size", [0, 1, 4096, 1 << 20])
def test_a_buffer_of_the_size_asked_for_that_takes_its_bytes(size: int) -> None:
    buffer = unfilled_bytearray(size)
    assert isinstance(buffer, bytearray) and len(buffer) == size
    buffer[:] = b"\x5a" * size
    assert bytes(buffer) == b"\x5a" * size
    memoryview(buffer)[: size // 2] = bytes(size // 2)
    assert buffer.count(0) == size // 2


def test_a_negative_size_is_refused() -> None:
    with pytest.raises(ValueError):
        unfilled_bytearray(-1)
