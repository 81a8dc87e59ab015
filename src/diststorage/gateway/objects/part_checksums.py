"""The flexible checksum of an object completed from parts, computed from its parts' own.

S3 knows two kinds. COMPOSITE is the algorithm over the concatenated binary part checksums,
base64, with ``-N`` (N parts) appended: a checksum of checksums, which no client can compare
with the whole body's. FULL_OBJECT is the checksum of the whole body, which CRCs (and only
they) can give without reading the body again: the CRC of a concatenation follows from the
parts' CRCs and lengths (``awscrt.checksums.combine_*``). CRC64NVME is FULL_OBJECT only; the
SHAs are COMPOSITE only.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Sequence

from awscrt import checksums

from diststorage.core.errors import InvalidRequest

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"

# Width in bytes of each CRC, and how two are combined (first, second, second's length).
_CRCS: dict[str, tuple[int, Callable[[int, int, int], int]]] = {
    "CRC32": (4, checksums.combine_crc32),
    "CRC32C": (4, checksums.combine_crc32c),
    "CRC64NVME": (8, checksums.combine_crc64nvme),
}
_DIGESTS: dict[str, Callable[[bytes], bytes]] = {
    "CRC32": lambda data: checksums.crc32(data).to_bytes(4, "big"),
    "CRC32C": lambda data: checksums.crc32c(data).to_bytes(4, "big"),
    "SHA1": lambda data: hashlib.sha1(data, usedforsecurity=False).digest(),
    "SHA256": lambda data: hashlib.sha256(data).digest(),
}
ALGORITHMS = frozenset(_CRCS) | frozenset(_DIGESTS)


def checksum_choice(algorithm: str | None, kind: str | None) -> tuple[str | None, str | None]:
    """The (algorithm, kind) an upload is created with, kind defaulted as S3 does (FULL_OBJECT
    for CRC64NVME, else COMPOSITE); InvalidRequest for a pair S3 refuses."""
    if algorithm is None:
        if kind is not None:
            raise InvalidRequest("a checksum type needs a checksum algorithm")
        return None, None
    algorithm = algorithm.upper()
    if algorithm not in ALGORITHMS:
        raise InvalidRequest(f"checksum algorithm {algorithm} is not supported")
    kind = (kind or (FULL_OBJECT if algorithm == "CRC64NVME" else COMPOSITE)).upper()
    if kind == FULL_OBJECT and algorithm not in _CRCS:
        raise InvalidRequest(f"{algorithm} checksums cannot be FULL_OBJECT")
    if kind == COMPOSITE and algorithm not in _DIGESTS:
        raise InvalidRequest(f"{algorithm} checksums cannot be COMPOSITE")
    if kind not in (FULL_OBJECT, COMPOSITE):
        raise InvalidRequest(f"checksum type {kind} is not COMPOSITE or FULL_OBJECT")
    return algorithm, kind


def combine_part_checksums(algorithm: str, kind: str, parts: Sequence[tuple[str, int]]) -> str:
    """The object's checksum (base64) from each part's base64 checksum and size, in order: a
    ``meta.ChecksumCombiner``."""
    raws = [_decoded(value) for value, _ in parts]
    if kind == COMPOSITE and algorithm in _DIGESTS:
        digest = _DIGESTS[algorithm](b"".join(raws))
        return f"{base64.b64encode(digest).decode()}-{len(parts)}"
    if kind == FULL_OBJECT and algorithm in _CRCS:
        width, combine = _CRCS[algorithm]
        crc = 0
        for index, (raw, (_, size)) in enumerate(zip(raws, parts, strict=True)):
            value = int.from_bytes(raw, "big")
            crc = value if index == 0 else combine(crc, value, size)
        return base64.b64encode(crc.to_bytes(width, "big")).decode()
    raise InvalidRequest(f"{algorithm} checksums cannot be {kind}")


def _decoded(value: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise InvalidRequest(f"checksum {value!r} is not base64") from None
