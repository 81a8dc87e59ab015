"""What a write may book on a node before its bytes arrive (``node.capacity``): pure, no I/O.

A stalled write used to hold its whole announced size; now it holds at most
``UPFRONT_RESERVATION_BYTES`` until its blocks come, while a write that could never fit is
still refused at its header."""

from __future__ import annotations

import pytest

from diststorage.core.errors import InsufficientStorage
from diststorage.node.capacity import UPFRONT_RESERVATION_BYTES, CapacityLedger

GIB = 1 << 30
MIB = 1 << 20
DISK_FREE = 100 * GIB


def test_a_large_write_books_only_the_upfront_share() -> None:
    ledger = CapacityLedger(2 * GIB)
    booked = ledger.reserve(GIB, DISK_FREE)
    assert booked == UPFRONT_RESERVATION_BYTES == ledger.reserved_bytes
    assert ledger.free_bytes(DISK_FREE) == 2 * GIB - UPFRONT_RESERVATION_BYTES


def test_a_small_write_books_its_size() -> None:
    ledger = CapacityLedger(2 * GIB)
    assert ledger.reserve(4096, DISK_FREE) == 4096


def test_a_write_that_cannot_fit_whole_is_refused_at_once() -> None:
    ledger = CapacityLedger(GIB)
    with pytest.raises(InsufficientStorage):
        ledger.reserve(GIB + 1, DISK_FREE)
    assert ledger.reserved_bytes == 0


def test_many_stalled_writes_leave_room_for_others() -> None:
    """The review's 8 stalled uploads announcing 255 MiB each on a 2 GiB node took all but
    88 576 bytes; now they hold 8 upfront shares and another large write still fits."""
    ledger = CapacityLedger(2 * GIB)
    for _ in range(8):
        ledger.reserve(255 * MIB, DISK_FREE)
    assert ledger.reserved_bytes == 8 * UPFRONT_RESERVATION_BYTES
    ledger.reserve(GIB, DISK_FREE)


def test_the_rest_is_booked_as_blocks_arrive() -> None:
    capacity = UPFRONT_RESERVATION_BYTES + MIB
    ledger = CapacityLedger(capacity)
    booked = ledger.reserve(capacity, DISK_FREE)
    ledger.grow(MIB)
    assert ledger.reserved_bytes == booked + MIB == capacity
    with pytest.raises(InsufficientStorage):
        ledger.grow(1)
    ledger.release(ledger.reserved_bytes, 0)
    assert ledger.free_bytes(DISK_FREE) == capacity
