"""Capacity accounting of a chunk store: committed bytes, reservations of writes in progress.

All numbers count bytes of chunk *files* (data + trailer), because that is what fills the disk.
The ledger does no I/O: the caller passes in the disk's free space when a decision needs it.
Only the event-loop thread touches it, so it needs no lock.
"""

from __future__ import annotations

from diststorage.core.errors import InsufficientStorage

DEFAULT_DISK_MARGIN_BYTES = 64 << 20


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

    def reserve(self, nbytes: int, disk_free_bytes: int) -> None:
        """Admits a new write of up to nbytes, or raises InsufficientStorage."""
        free = self.free_bytes(disk_free_bytes)
        if nbytes > free:
            raise InsufficientStorage(f"{nbytes} bytes requested, {free} free")
        self.reserved_bytes += nbytes

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
