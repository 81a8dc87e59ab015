"""The S3 checksums: known values, botocore's own checksums as the oracle, combination of part
CRCs into a full-object CRC, composite checksums, and strict base64 decoding."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import zlib

import pytest
from botocore.httpchecksum import CrtCrc32cChecksum, CrtCrc64NvmeChecksum

from diststorage.core.errors import InvalidDigest, InvalidRequest
from diststorage.s3auth import (
    ChecksumAlgorithm,
    algorithm_from_header,
    combine_full_object,
    composite,
    decode_b64_checksum,
    header_name,
    new_checksum,
    parse_algorithm,
)

A = ChecksumAlgorithm
DATA = os.urandom(300_000) + b"123456789"


def digest(algo: ChecksumAlgorithm, data: bytes, pieces: int = 1) -> bytes:
    checksum = new_checksum(algo)
    step = max(1, len(data) // pieces)
    for at in range(0, len(data), step):
        checksum.update(memoryview(data)[at : at + step])
    return checksum.digest()


def test_known_values() -> None:
    assert digest(A.CRC64NVME, b"123456789").hex() == "ae8b14860a799888"
    assert digest(A.CRC32C, b"123456789").hex() == "e3069283"
    assert digest(A.CRC32, b"123456789").hex() == "cbf43926"
    assert new_checksum(A.CRC32).digest() == b"\0" * 4


@pytest.mark.parametrize("pieces", [1, 7, 1000])
def test_every_algorithm_matches_an_independent_implementation(pieces: int) -> None:
    crc32c, crc64 = CrtCrc32cChecksum(), CrtCrc64NvmeChecksum()
    crc32c.update(DATA)
    crc64.update(DATA)
    expected = {
        A.CRC32: zlib.crc32(DATA).to_bytes(4, "big"),
        A.CRC32C: crc32c.digest(),
        A.CRC64NVME: crc64.digest(),
        A.SHA1: hashlib.sha1(DATA).digest(),
        A.SHA256: hashlib.sha256(DATA).digest(),
    }
    for algo, value in expected.items():
        assert digest(algo, DATA, pieces) == value, algo
        checksum = new_checksum(algo)
        checksum.update(DATA)
        assert checksum.b64() == base64.b64encode(value).decode()


def test_header_names_map_both_ways() -> None:
    for algo in A:
        assert algorithm_from_header(header_name(algo)) is algo
        assert algorithm_from_header(header_name(algo).upper()) is algo
    assert header_name(A.CRC64NVME) == "x-amz-checksum-crc64nvme"
    for other in ("x-amz-checksum-type", "x-amz-checksum-algorithm", "x-amz-meta-crc32", "crc32"):
        assert algorithm_from_header(other) is None
    assert parse_algorithm("crc32c") is A.CRC32C
    with pytest.raises(InvalidRequest):
        parse_algorithm("md5")


@pytest.mark.parametrize("algo", [A.CRC32, A.CRC32C, A.CRC64NVME])
def test_part_crcs_combine_into_the_whole_objects(algo: ChecksumAlgorithm) -> None:
    cuts = [0, 1, 5_000, 200_000, len(DATA)]
    parts = [DATA[a:b] for a, b in itertools.pairwise(cuts)]
    combined = combine_full_object(algo, [(digest(algo, p), len(p)) for p in parts])
    assert combined == digest(algo, DATA)
    assert combine_full_object(algo, []) == digest(algo, b"")


def test_sha_checksums_do_not_combine() -> None:
    with pytest.raises(InvalidRequest):
        combine_full_object(A.SHA256, [(hashlib.sha256(b"").digest(), 0)])
    with pytest.raises(InvalidRequest):
        combine_full_object(A.CRC32, [(b"\0" * 8, 1)])


@pytest.mark.parametrize("algo", list(A))
def test_a_composite_checksum_is_the_checksum_of_the_part_digests(
    algo: ChecksumAlgorithm,
) -> None:
    parts = [digest(algo, b"part one"), digest(algo, b"part two")]
    expected = base64.b64encode(digest(algo, b"".join(parts))).decode()
    assert composite(algo, parts) == f"{expected}-2"


def test_base64_checksums_decode_strictly() -> None:
    assert decode_b64_checksum(A.CRC32, "y/Q5Jg==") == digest(A.CRC32, b"123456789")
    for bad in ("yfQ5Jg", "yfQ5J*==", "AAAAAAAA", ""):
        with pytest.raises(InvalidDigest):
            decode_b64_checksum(A.CRC32, bad)
    with pytest.raises(InvalidDigest):
        decode_b64_checksum(A.SHA256, base64.b64encode(b"\0" * 20).decode())
