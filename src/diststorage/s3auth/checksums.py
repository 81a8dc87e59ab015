"""The S3 additional checksums: CRC32, CRC32C, CRC64NVME, SHA1 and SHA256.

As S3 sends and returns them: big-endian digests, base64 in ``x-amz-checksum-*`` headers and
trailers. The CRCs come from awscrt (the code botocore[crt] uses; it releases the GIL above a
few KiB and can combine CRCs, which multipart's full-object checksums need), the SHAs from
hashlib (which releases the GIL too), so that callers may hash in an executor thread.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Protocol

from awscrt import checksums as crt

from diststorage.core.errors import InvalidDigest, InvalidRequest

HEADER_PREFIX = "x-amz-checksum-"


class ChecksumAlgorithm(StrEnum):
    CRC32 = "CRC32"
    CRC32C = "CRC32C"
    CRC64NVME = "CRC64NVME"
    SHA1 = "SHA1"
    SHA256 = "SHA256"


DIGEST_BYTES: dict[ChecksumAlgorithm, int] = {
    ChecksumAlgorithm.CRC32: 4,
    ChecksumAlgorithm.CRC32C: 4,
    ChecksumAlgorithm.CRC64NVME: 8,
    ChecksumAlgorithm.SHA1: 20,
    ChecksumAlgorithm.SHA256: 32,
}

_CrcFunction = Callable[[bytes | memoryview, int], int]
_CombineFunction = Callable[[int, int, int], int]

_CRC: dict[ChecksumAlgorithm, tuple[_CrcFunction, _CombineFunction]] = {
    ChecksumAlgorithm.CRC32: (crt.crc32, crt.combine_crc32),
    ChecksumAlgorithm.CRC32C: (crt.crc32c, crt.combine_crc32c),
    ChecksumAlgorithm.CRC64NVME: (crt.crc64nvme, crt.combine_crc64nvme),
}


def algorithm_from_header(name: str) -> ChecksumAlgorithm | None:
    """The algorithm of an ``x-amz-checksum-<algo>`` header name (any case); None for any other
    header, ``x-amz-checksum-type`` and ``x-amz-checksum-algorithm`` included."""
    lowered = name.lower()
    if not lowered.startswith(HEADER_PREFIX):
        return None
    try:
        return ChecksumAlgorithm(lowered[len(HEADER_PREFIX) :].upper())
    except ValueError:
        return None


def parse_algorithm(value: str) -> ChecksumAlgorithm:
    """An algorithm as ``x-amz-sdk-checksum-algorithm`` or ``x-amz-checksum-algorithm`` name it
    (any case). Raises InvalidRequest for anything else."""
    try:
        return ChecksumAlgorithm(value.strip().upper())
    except ValueError:
        raise InvalidRequest(f"unknown checksum algorithm {value[:40]!r}") from None


def header_name(algo: ChecksumAlgorithm) -> str:
    return HEADER_PREFIX + algo.value.lower()


class Checksum(Protocol):
    """A running checksum; ``update`` may run in a thread while the event loop goes on."""

    def update(self, data: bytes | memoryview) -> None: ...

    def digest(self) -> bytes: ...

    def b64(self) -> str: ...


class _Crc:
    def __init__(self, algo: ChecksumAlgorithm) -> None:
        self._crc_of = _CRC[algo][0]
        self._bytes = DIGEST_BYTES[algo]
        self._value = 0

    def update(self, data: bytes | memoryview) -> None:
        self._value = self._crc_of(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._bytes, "big")

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


class _Sha:
    def __init__(self, algo: ChecksumAlgorithm) -> None:
        self._hash = hashlib.new(algo.value.lower())

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def digest(self) -> bytes:
        return self._hash.digest()

    def b64(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


def new_checksum(algo: ChecksumAlgorithm) -> Checksum:
    if algo in _CRC:
        return _Crc(algo)
    return _Sha(algo)


def checksum_of(algo: ChecksumAlgorithm, data: bytes | memoryview) -> bytes:
    checksum = new_checksum(algo)
    checksum.update(data)
    return checksum.digest()


def combine_full_object(algo: ChecksumAlgorithm, parts: Sequence[tuple[bytes, int]]) -> bytes:
    """The CRC of the whole object from its parts' CRC digests and byte lengths, in order: what
    S3's FULL_OBJECT multipart checksum is. Raises InvalidRequest for SHA algorithms, whose
    digests cannot be combined."""
    if algo not in _CRC:
        raise InvalidRequest(f"{algo} cannot be combined into a full-object checksum")
    combine = _CRC[algo][1]
    size = DIGEST_BYTES[algo]
    value = 0
    for digest, length in parts:
        if len(digest) != size:
            raise InvalidRequest(f"a {algo} digest has {size} bytes, not {len(digest)}")
        value = combine(value, int.from_bytes(digest, "big"), length)
    return value.to_bytes(size, "big")


def composite(algo: ChecksumAlgorithm, part_digests: Sequence[bytes]) -> str:
    """S3's COMPOSITE multipart checksum: ``base64(H(d1 ‖ … ‖ dn))-n``."""
    digest = checksum_of(algo, b"".join(part_digests))
    return f"{base64.b64encode(digest).decode('ascii')}-{len(part_digests)}"


def decode_b64_checksum(algo: ChecksumAlgorithm, text: str) -> bytes:
    """The digest a base64 checksum value carries. Raises InvalidDigest when it is not strict
    base64 or not the algorithm's digest length."""
    try:
        digest = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidDigest(f"the {algo} checksum {text[:80]!r} is not base64") from None
    if len(digest) != DIGEST_BYTES[algo]:
        raise InvalidDigest(
            f"a {algo} checksum has {DIGEST_BYTES[algo]} bytes, this one {len(digest)}"
        )
    return digest
