"""Block digests: the cryptographic hash of every block, recorded in the metadata at commit.

A node checks each block against its CRC-32C, which catches bit rot cheaply but is no defence
against whoever can write the node's disk (or speak its gRPC port): CRC-32C is linear, so four
chosen bytes give any content any CRC. A digest the node never holds is: the gateway verifies
every block it reads against the digest in the chunk's row, and a block that differs is damage,
however good its CRC.

BLAKE3 with its full 32-byte output: on this project's machines it hashes 1 MiB blocks at about
4 times SHA-256's rate (SHA-NI) and 7 times BLAKE2b's, which keeps a GET's extra CPU to a few
percent (bench/blockhash measures both).

A chunk keeps one digest list, the blocks' digests concatenated in block order::

    +----------------+----------------+-----+------------------+
    | digest block 0 | digest block 1 | ... | digest block n-1 |   32 bytes apiece
    +----------------+----------------+-----+------------------+

one ``LargeBinary`` column on the chunk row (a row per block would be 128 rows per 64 MiB
chunk). A ranged read slices out just the digests of the blocks it fetches. A chunk written
before digests existed has an empty list: it is verified by its CRCs alone.
"""

from __future__ import annotations

from collections.abc import Iterable

import blake3

BLOCK_DIGEST_BYTES = 32

NO_DIGESTS = b""
"""The digest list of a chunk written before digests were recorded."""


def block_digest(block: bytes | memoryview) -> bytes:
    """The digest recorded for a block's bytes."""
    return blake3.blake3(block).digest()


def pack_digests(digests: Iterable[bytes]) -> bytes:
    """One chunk's digest list from its blocks' digests, in block order."""
    packed = b"".join(digests)
    if len(packed) % BLOCK_DIGEST_BYTES:
        raise ValueError(f"digests must be {BLOCK_DIGEST_BYTES} bytes apiece")
    return packed


def digest_count(packed: bytes) -> int:
    """How many blocks a digest list covers."""
    if len(packed) % BLOCK_DIGEST_BYTES:
        raise ValueError(f"a digest list of {len(packed)} bytes is not whole digests")
    return len(packed) // BLOCK_DIGEST_BYTES


def digest_at(packed: bytes, block_index: int) -> bytes | None:
    """The digest of block ``block_index`` of the chunk, or None when the chunk has no digests
    recorded (written before they were). IndexError for a block past the list's end."""
    if not packed:
        return None
    if not 0 <= block_index < digest_count(packed):
        raise IndexError(f"block {block_index} of {digest_count(packed)}")
    start = block_index * BLOCK_DIGEST_BYTES
    return packed[start : start + BLOCK_DIGEST_BYTES]
