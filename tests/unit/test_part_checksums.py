"""A completed object's checksum from its parts': FULL_OBJECT CRCs equal the CRC of the
whole body (for every CRC), COMPOSITE ones are the checksum of the parts' checksums with the
part count, and the pairs S3 refuses are refused at creation."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Callable

import pytest
from awscrt import checksums

from diststorage.core.errors import BadDigest, InvalidDigest, InvalidRequest
from diststorage.gateway.objects.part_checksums import checksum_choice, combine_part_checksums
from diststorage.meta import StoredChecksum
from diststorage.meta.completion import check_expected

PARTS = [os.urandom(1000), b"", os.urandom(77), os.urandom(4096)]


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


@pytest.mark.parametrize(
    ("algorithm", "crc", "width"),
    [
        ("CRC32", checksums.crc32, 4),
        ("CRC32C", checksums.crc32c, 4),
        ("CRC64NVME", checksums.crc64nvme, 8),
    ],
)
def test_a_full_object_crc_is_the_crc_of_the_whole_body(
    algorithm: str, crc: Callable[[bytes], int], width: int
) -> None:
    parts = [(b64(crc(p).to_bytes(width, "big")), len(p)) for p in PARTS]
    whole = b64(crc(b"".join(PARTS)).to_bytes(width, "big"))
    assert combine_part_checksums(algorithm, "FULL_OBJECT", parts) == whole


def test_a_composite_checksum_is_over_the_parts_checksums() -> None:
    digests = [hashlib.sha256(p).digest() for p in PARTS]
    parts = [(b64(d), len(p)) for d, p in zip(digests, PARTS, strict=True)]
    expected = f"{b64(hashlib.sha256(b''.join(digests)).digest())}-4"
    assert combine_part_checksums("SHA256", "COMPOSITE", parts) == expected


def test_the_kind_defaults_as_s3_does_and_refused_pairs_are_refused() -> None:
    assert checksum_choice(None, None) == (None, None)
    assert checksum_choice("crc32", None) == ("CRC32", "COMPOSITE")
    assert checksum_choice("CRC64NVME", None) == ("CRC64NVME", "FULL_OBJECT")
    assert checksum_choice("CRC32C", "full_object") == ("CRC32C", "FULL_OBJECT")
    for algorithm, kind in [
        (None, "COMPOSITE"),
        ("MD5", None),
        ("SHA1", "FULL_OBJECT"),
        ("CRC64NVME", "COMPOSITE"),
        ("CRC32", "WHOLE"),
    ]:
        with pytest.raises(InvalidRequest):
            checksum_choice(algorithm, kind)
    with pytest.raises(InvalidDigest):
        combine_part_checksums("CRC32", "FULL_OBJECT", [("not base64!", 1)])


def test_a_completes_own_checksum_must_be_the_parts_with_or_without_its_count() -> None:
    made = StoredChecksum("CRC32", "COMPOSITE", "AAAAAQ==-2")
    for given in ("AAAAAQ==-2", "AAAAAQ=="):
        check_expected(made, StoredChecksum("CRC32", "COMPOSITE", given))
    check_expected(made, None)
    for wrong in (
        StoredChecksum("CRC32", "COMPOSITE", "AAAAAg=="),
        StoredChecksum("SHA1", "COMPOSITE", "AAAAAQ=="),
    ):
        with pytest.raises(BadDigest):
            check_expected(made, wrong)
    with pytest.raises(BadDigest):
        check_expected(None, StoredChecksum("CRC32", "FULL_OBJECT", "AAAAAQ=="))
