"""The on-disk format of one chunk file.

::

    block 0 data | block 1 data | ... | block n-1 data
    trailer: n * (u64 length, u32 crc32c)  u32 n  b"DSCHUNK1"      (all big-endian)

The trailer sits at the end so a writer can stream blocks without knowing their number in
advance. A file is only accepted when the lengths in its trailer add up exactly to the file size;
that catches truncation and most trailer damage before a single byte is served. Damage inside the
data is caught by the per-block CRC on every read.
"""

from __future__ import annotations

import bisect
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from diststorage.core.errors import DataLoss, InvalidRequest

MAGIC = b"DSCHUNK1"
MAX_BLOCK_BYTES = 64 << 20

_ENTRY = struct.Struct(">QI")
_FOOTER = struct.Struct(">I8s")
ENTRY_SIZE = _ENTRY.size
FOOTER_SIZE = _FOOTER.size


@dataclass(frozen=True, slots=True)
class BlockEntry:
    offset: int
    """Where the block's data starts within the chunk's data (and within the file)."""
    length: int
    crc32c: int

    @property
    def end(self) -> int:
        return self.offset + self.length


@dataclass(frozen=True, slots=True)
class ChunkIndex:
    """The parsed trailer: where every block lies and what its CRC must be."""

    blocks: tuple[BlockEntry, ...]
    data_bytes: int

    def overlapping(self, offset: int, length: int) -> list[BlockEntry]:
        """Blocks holding any byte of [offset, offset+length); length 0 means to the end.

        Raises InvalidRequest when the range reaches past the end of the data.
        """
        end = self.data_bytes if length == 0 else offset + length
        if offset < 0 or length < 0 or offset > self.data_bytes or end > self.data_bytes:
            raise InvalidRequest(
                f"range {offset}+{length} is outside the chunk's {self.data_bytes} bytes"
            )
        starts = [block.offset for block in self.blocks]
        first = max(bisect.bisect_right(starts, offset) - 1, 0)
        return [
            block
            for block in self.blocks[first:]
            if block.offset < end and block.end > offset and block.length > 0
        ]


def trailer_bytes(block_count: int) -> int:
    return block_count * ENTRY_SIZE + FOOTER_SIZE


def encode_trailer(blocks: Sequence[tuple[int, int]]) -> bytes:
    """(length, crc32c) per block → the trailer to append after the data."""
    parts = [_ENTRY.pack(length, crc) for length, crc in blocks]
    parts.append(_FOOTER.pack(len(blocks), MAGIC))
    return b"".join(parts)


def parse_footer(footer: bytes, file_size: int) -> int:
    """The block count from the last FOOTER_SIZE bytes; DataLoss if they cannot be a footer."""
    if len(footer) != FOOTER_SIZE:
        raise DataLoss(f"chunk file of {file_size} bytes is too short for a trailer")
    block_count, magic = _FOOTER.unpack(footer)
    if magic != MAGIC:
        raise DataLoss("chunk file has no trailer magic (truncated or overwritten)")
    if trailer_bytes(block_count) > file_size:
        raise DataLoss(f"chunk trailer claims {block_count} blocks, more than the file holds")
    return int(block_count)


def parse_trailer(trailer: bytes, file_size: int) -> ChunkIndex:
    """The whole trailer (entries + footer) → ChunkIndex, checked against the file size."""
    block_count = parse_footer(trailer[-FOOTER_SIZE:], file_size)
    if len(trailer) != trailer_bytes(block_count):
        raise DataLoss("chunk trailer is shorter than its block count says")
    blocks: list[BlockEntry] = []
    offset = 0
    for i in range(block_count):
        length, crc = _ENTRY.unpack_from(trailer, i * ENTRY_SIZE)
        blocks.append(BlockEntry(offset, length, crc))
        offset += length
    if offset + len(trailer) != file_size:
        raise DataLoss(
            f"chunk trailer accounts for {offset + len(trailer)} bytes, the file has {file_size}"
        )
    return ChunkIndex(tuple(blocks), offset)


def read_index(fd: int, file_size: int) -> ChunkIndex:
    """Reads and parses the trailer of an open chunk file (blocking)."""
    footer = os.pread(fd, FOOTER_SIZE, max(file_size - FOOTER_SIZE, 0))
    block_count = parse_footer(footer, file_size)
    size = trailer_bytes(block_count)
    return parse_trailer(os.pread(fd, size, file_size - size), file_size)


def data_bytes_or_file_size(path: str | os.PathLike[str], file_size: int) -> int:
    """Data bytes of a chunk file from its footer alone, or the file size if the footer is bad.

    Used by listings, which must not fail because one chunk is damaged (a read reports that).
    """
    with open(path, "rb") as f:
        f.seek(max(file_size - FOOTER_SIZE, 0))
        try:
            return file_size - trailer_bytes(parse_footer(f.read(FOOTER_SIZE), file_size))
        except DataLoss:
            return file_size
