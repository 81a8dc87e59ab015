"""The S3 checksums: a CRC combined from any split of a body is the whole body's, a running
checksum fed in any pieces is the one-shot one, and base64 values decode to their digest or
InvalidDigest."""

from __future__ import annotations

import base64

from hypothesis import example, given
from hypothesis import strategies as st

from diststorage.core.errors import InvalidDigest, InvalidRequest
from diststorage.s3auth import (
    ChecksumAlgorithm,
    combine_full_object,
    decode_b64_checksum,
    new_checksum,
)
from diststorage.s3auth.checksums import DIGEST_BYTES, checksum_of

from .strategies import any_text, split_at

ALGORITHMS = st.sampled_from(list(ChecksumAlgorithm))
CRCS = st.sampled_from(
    [ChecksumAlgorithm.CRC32, ChecksumAlgorithm.CRC32C, ChecksumAlgorithm.CRC64NVME]
)


@given(CRCS, st.binary(max_size=3000), st.lists(st.integers(0, 10_000), max_size=12))
@example(ChecksumAlgorithm.CRC64NVME, b"", [])
def test_a_crc_combined_from_parts_is_the_whole_bodys(
    algorithm: ChecksumAlgorithm, body: bytes, cuts: list[int]
) -> None:
    parts = [(checksum_of(algorithm, part), len(part)) for part in split_at(body, cuts)]
    # Empty parts too: a zero-length part combines as nothing.
    parts.append((checksum_of(algorithm, b""), 0))
    assert combine_full_object(algorithm, parts) == checksum_of(algorithm, body)


@given(st.sampled_from([ChecksumAlgorithm.SHA1, ChecksumAlgorithm.SHA256]), st.binary())
def test_sha_digests_cannot_be_combined(algorithm: ChecksumAlgorithm, body: bytes) -> None:
    try:
        combine_full_object(algorithm, [(checksum_of(algorithm, body), len(body))])
    except InvalidRequest:
        return
    raise AssertionError("a SHA full-object checksum was combined")


@given(CRCS, st.binary(max_size=12), st.integers(0, 2**40))
def test_a_digest_of_the_wrong_size_is_invalid_request(
    algorithm: ChecksumAlgorithm, digest: bytes, length: int
) -> None:
    try:
        combine_full_object(algorithm, [(digest, length)])
    except InvalidRequest:
        assert len(digest) != DIGEST_BYTES[algorithm]
        return
    assert len(digest) == DIGEST_BYTES[algorithm]


@given(ALGORITHMS, st.binary(max_size=3000), st.lists(st.integers(0, 10_000), max_size=12))
def test_a_running_checksum_is_the_one_shot_one(
    algorithm: ChecksumAlgorithm, body: bytes, cuts: list[int]
) -> None:
    running = new_checksum(algorithm)
    for part in split_at(body, cuts):
        running.update(memoryview(part))
    assert running.digest() == checksum_of(algorithm, body)
    assert decode_b64_checksum(algorithm, running.b64()) == running.digest()


@given(
    ALGORITHMS,
    st.one_of(any_text(60), st.binary(max_size=40).map(lambda raw: base64.b64encode(raw).decode())),
)
@example(ChecksumAlgorithm.CRC32, "é")
@example(ChecksumAlgorithm.CRC32, "AAAA AA==")
@example(ChecksumAlgorithm.CRC32, "\udcff")
def test_a_base64_checksum_is_its_digest_or_invalid_digest(
    algorithm: ChecksumAlgorithm, text: str
) -> None:
    try:
        digest = decode_b64_checksum(algorithm, text)
    except InvalidDigest:
        return
    assert len(digest) == DIGEST_BYTES[algorithm]
    assert base64.b64decode(text.strip(), validate=True) == digest
