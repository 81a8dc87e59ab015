"""The flexible checksum of an object completed from parts, computed from its parts' own.

S3 knows two kinds. COMPOSITE is the algorithm over the concatenated binary part checksums,
base64, with ``-N`` (N parts) appended: a checksum of checksums, which no client can compare
with the whole body's. FULL_OBJECT is the checksum of the whole body, which CRCs (and only
they) can give without reading the body again: the CRC of a concatenation follows from the
parts' CRCs and lengths. CRC64NVME is FULL_OBJECT only; the SHAs are COMPOSITE only. The
arithmetic is ``s3auth.checksums``'; this module holds S3's rules about which is which.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from diststorage.core.errors import InvalidRequest
from diststorage.s3auth import (
    ChecksumAlgorithm,
    combine_full_object,
    composite,
    decode_b64_checksum,
    parse_algorithm,
)

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"

_CRCS = frozenset({ChecksumAlgorithm.CRC32, ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC64NVME})


def checksum_choice(algorithm: str | None, kind: str | None) -> tuple[str | None, str | None]:
    """The (algorithm, kind) an upload is created with, kind defaulted as S3 does (FULL_OBJECT
    for CRC64NVME, else COMPOSITE); InvalidRequest for a pair S3 refuses."""
    if algorithm is None:
        if kind is not None:
            raise InvalidRequest("a checksum type needs a checksum algorithm")
        return None, None
    algo = parse_algorithm(algorithm)
    default = FULL_OBJECT if algo is ChecksumAlgorithm.CRC64NVME else COMPOSITE
    kind = (kind or default).strip().upper()
    if kind not in (FULL_OBJECT, COMPOSITE):
        raise InvalidRequest(f"checksum type {kind[:40]!r} is not COMPOSITE or FULL_OBJECT")
    if kind == FULL_OBJECT and algo not in _CRCS:
        raise InvalidRequest(f"{algo} checksums cannot be FULL_OBJECT")
    if kind == COMPOSITE and algo is ChecksumAlgorithm.CRC64NVME:
        raise InvalidRequest(f"{algo} checksums cannot be COMPOSITE")
    return algo.value, kind


def combine_part_checksums(algorithm: str, kind: str, parts: Sequence[tuple[str, int]]) -> str:
    """The object's checksum (base64) from each part's base64 checksum and size, in order: a
    ``meta.ChecksumCombiner``."""
    algo = parse_algorithm(algorithm)
    digests = [decode_b64_checksum(algo, value) for value, _ in parts]
    if kind == COMPOSITE and algo is not ChecksumAlgorithm.CRC64NVME:
        return composite(algo, digests)
    if kind == FULL_OBJECT and algo in _CRCS:
        sizes = [size for _, size in parts]
        whole = combine_full_object(algo, list(zip(digests, sizes, strict=True)))
        return base64.b64encode(whole).decode("ascii")
    raise InvalidRequest(f"{algo} checksums cannot be {kind}")
