"""Capacity accounting of a chunk store: committed bytes, reservations of writes in progress.

All numbers count bytes of chunk *files* (data + trailer), because that is what fills the disk.
The ledger does no I/O: the caller passes in the disk's free space when a decision needs it.
Only the event-loop thread touches it, so it needs no lock.
"""

from __future__ import annotations

from diststorage.core.errors import InsufficientStorage

DEFAULT_DISK_MARGIN_BYTES = 64 << 20
# What a write may book before its bytes arrive. A write announces its size at its header; had
# it booked all of it there, a caller that then sends nothing would hold the whole size of
# free space for as long as it stalls (16 stalled uploads of 256 MiB chunks filled 2 GiB
# nodes). It books this much up front and the rest as its blocks arrive (``grow``), so what a
# stalled write pins is bounded. 16 MiB: the blocks a gateway sends at once for one upload
# (4 stripes in flight of 2 MiB, replicated whole) fit without growing.
UPFRONT_RESERVATION_BYTES = 16 << 20


class CapacityLedger:
    def __init__(
        self,
        capacity_bytes: int | None,
        *,
        used_bytes: int = 0,
        chunk_count: int = 0,
        disk_margin_bytes: int = DEFAULT_DISK_MARGIN_BYTES,
    ) -> None:
        self.capacity_bytes = capacity_bytes
        self.disk_margin_bytes = disk_margin_bytes
        self.used_bytes = used_bytes
        self.chunk_count = chunk_count
        self.reserved_bytes = 0
        # Bytes already in temp files. The disk's free space has shrunk by these already, so
        # only the rest of the reservations (reserved - pending_written) is still owed by it.
        self.pending_written_bytes = 0

    def free_bytes(self, disk_free_bytes: int) -> int:
        """What the store can still accept, by both its configured capacity and the disk."""
        owed_to_disk = self.reserved_bytes - self.pending_written_bytes
        free = disk_free_bytes - self.disk_margin_bytes - owed_to_disk
        if self.capacity_bytes is not None:
            free = min(free, self.capacity_bytes - self.used_bytes - self.reserved_bytes)
        return max(free, 0)

    def reserve(self, nbytes: int, disk_free_bytes: int) -> int:
        """Admits a new write of up to nbytes, or raises InsufficientStorage; returns what it
        booked: at most ``UPFRONT_RESERVATION_BYTES``, the rest is booked as it is written
        (``grow``). A write that could not fit whole is refused at once all the same."""
        free = self.free_bytes(disk_free_bytes)
        if nbytes > free:
            raise InsufficientStorage(f"{nbytes} bytes requested, {free} free")
        booked = min(nbytes, UPFRONT_RESERVATION_BYTES)
        self.reserved_bytes += booked
        return booked

    def grow(self, nbytes: int) -> None:
        """Extends a reservation that turned out too small (configured capacity only).

        The disk is checked by the writer right before it writes, where the number is fresh.
        """
        if self.capacity_bytes is not None:
            free = self.capacity_bytes - self.used_bytes - self.reserved_bytes
            if nbytes > free:
                raise InsufficientStorage(f"{nbytes} more bytes needed, {max(free, 0)} free")
        self.reserved_bytes += nbytes

    def wrote(self, nbytes: int) -> None:
        self.pending_written_bytes += nbytes

    def release(self, reserved_bytes: int, written_bytes: int) -> None:
        """Forgets a write that ended (aborted, or committed: see ``committed``)."""
        assert reserved_bytes <= self.reserved_bytes, "release of more than was reserved"
        assert written_bytes <= self.pending_written_bytes, "release of more than was written"
        self.reserved_bytes -= reserved_bytes
        self.pending_written_bytes -= written_bytes

    def committed(self, reserved_bytes: int, written_bytes: int, file_bytes: int) -> None:
        self.release(reserved_bytes, written_bytes)
        self.used_bytes += file_bytes
        self.chunk_count += 1

    def removed(self, file_bytes: int) -> None:
        self.used_bytes = max(self.used_bytes - file_bytes, 0)
        self.chunk_count = max(self.chunk_count - 1, 0)
