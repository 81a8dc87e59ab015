"""The verifying body adapters: what ``wrap_body`` picks for each payload mode, each check at
the body's end (signed sha256, Content-MD5, every x-amz-checksum-*), aws-chunked bodies as
boto3 really sends them, and the invariant that makes streaming safe: a body that fails a
check leaves no object and no chunk behind, through the real ObjectWriter."""

from __future__ import annotations

import base64
import hashlib
import os
import sqlite3
import zlib
from collections.abc import Mapping
from pathlib import Path

import pytest
from aws_chunked_streams import (
    AMZ_DATE,
    SCOPE,
    TEST_SEED,
    crc32_b64,
    signed_stream,
    signing_key,
    unsigned_stream,
)
from sigv4_oracles import accepted, boto3_sent

from diststorage.core.errors import (
    BadDigest,
    DiststorageError,
    IncompleteBody,
    InvalidDigest,
    InvalidRequest,
    PayloadTooLarge,
    SignatureDoesNotMatch,
    XAmzContentSHA256Mismatch,
)
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.auth.body import (
    ChunkedBody,
    VerifyingBody,
    body_checks_from_headers,
    decoded_size,
    wrap_body,
)
from diststorage.gateway.objects import PutOperation
from diststorage.meta import DEFAULT_NAMESPACE, MetadataStore
from diststorage.s3auth import ChecksumAlgorithm, ChunkSeed, PayloadMode, Verified, new_checksum
from diststorage.testing import BytesBody, FakeClock, in_memory_pipeline

A = ChecksumAlgorithm
BIG = os.urandom(700_000)  # past the 256 KiB at which hashing moves off the event loop
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
LIMIT = 1 << 30


def signed_hex(data: bytes) -> Verified:
    return Verified("K", PayloadMode.SIGNED_HEX, hashlib.sha256(data).hexdigest(), False)


UNSIGNED = Verified("K", PayloadMode.UNSIGNED, None, False)


def streaming(mode: PayloadMode) -> Verified:
    seed = ChunkSeed(signing_key(), SCOPE, AMZ_DATE, TEST_SEED) if mode.signs_chunks else None
    return Verified("K", mode, None, False, seed)


def b64_of(algo: ChecksumAlgorithm, data: bytes) -> str:
    checksum = new_checksum(algo)
    checksum.update(data)
    return checksum.b64()


async def read_all(body: VerifyingBody | ChunkedBody, size: int = 100_000) -> bytes:
    pieces = []
    while piece := await body.read_up_to(size):
        pieces.append(piece)
        if len(piece) < size:
            assert await body.read_up_to(size) == b""
            break
    return b"".join(pieces)


async def through(
    data: bytes, verified: Verified | None, headers: Mapping[str, str], size: int = 100_000
) -> tuple[bytes, VerifyingBody]:
    body, _ = wrap_body(BytesBody(data), verified, headers, LIMIT)
    return await read_all(body, size), body


# -- raw bodies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"small", BIG])
async def test_a_signed_sha256_is_checked_at_the_end(data: bytes) -> None:
    assert (await through(data, signed_hex(data), {}))[0] == data
    body, _ = wrap_body(BytesBody(data + b"!"), signed_hex(data), {}, LIMIT)
    got = b""
    with pytest.raises(XAmzContentSHA256Mismatch):
        while True:
            piece = await body.read_up_to(65536)
            got += piece
    assert len(got) == (len(data) + 1) // 65536 * 65536  # everything but the end came out


@pytest.mark.parametrize("algo", list(A))
@pytest.mark.parametrize("data", [b"", b"abc", BIG], ids=["empty", "small", "big"])
async def test_every_checksum_header_is_checked_and_exposed(
    algo: ChecksumAlgorithm, data: bytes
) -> None:
    header = {f"x-amz-checksum-{algo.lower()}": b64_of(algo, data)}
    _, body = await through(data, UNSIGNED, header)
    assert body.checksum(algo) == base64.b64decode(b64_of(algo, data))
    wrong = {f"X-Amz-Checksum-{algo.lower()}": b64_of(algo, data + b"x")}
    with pytest.raises(BadDigest, match=str(algo)):
        await through(data, UNSIGNED, wrong)


async def test_a_content_md5_is_checked() -> None:
    md5 = base64.b64encode(hashlib.md5(BIG).digest()).decode()
    await through(BIG, signed_hex(BIG), {"Content-MD5": md5})
    with pytest.raises(BadDigest, match="Content-MD5"):
        await through(BIG[:-1] + bytes([BIG[-1] ^ 1]), UNSIGNED, {"Content-MD5": md5})
    for malformed in ("not base64", base64.b64encode(b"short").decode()):
        with pytest.raises(InvalidDigest):
            await through(BIG, UNSIGNED, {"Content-MD5": malformed})


async def test_checksums_are_exposed_only_after_the_end_and_on_request() -> None:
    body, checks = wrap_body(BytesBody(b"abc"), UNSIGNED, {}, LIMIT, extra_checksums=[A.CRC64NVME])
    assert checks.compute == {A.CRC64NVME}
    assert body.checksum(A.CRC64NVME) is None
    assert await body.read_up_to(10) == b"abc"
    assert body.checksum(A.CRC64NVME) == base64.b64decode(b64_of(A.CRC64NVME, b"abc"))
    assert body.checksum(A.SHA1) is None
    stored = body.stored_checksum()
    assert stored is not None
    assert (stored.algorithm, stored.kind) == ("CRC64NVME", "FULL_OBJECT")
    assert stored.value == b64_of(A.CRC64NVME, b"abc")


async def test_framing_follows_x_amz_content_sha256_not_content_encoding() -> None:
    raw = b"5\r\nhello\r\n0\r\n\r\n"
    headers = {"Content-Encoding": "aws-chunked", "x-amz-content-sha256": "UNSIGNED-PAYLOAD"}
    assert (await through(raw, None, headers))[0] == raw
    assert (await through(raw, UNSIGNED, {"Content-Encoding": "aws-chunked"}))[0] == raw


@pytest.mark.parametrize(
    "headers",
    [
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="},
        {"x-amz-checksum-crc32": "AAAAAA==", "x-amz-sdk-checksum-algorithm": "CRC32C"},
        {"x-amz-sdk-checksum-algorithm": "CRC32"},
        {"x-amz-trailer": "x-amz-checksum-crc32"},  # a trailer on a raw body
    ],
)
def test_contradicting_checksum_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        body_checks_from_headers(UNSIGNED, headers)


def test_a_trailer_together_with_a_checksum_header_is_refused() -> None:
    headers = {"x-amz-trailer": "x-amz-checksum-crc32", "x-amz-checksum-crc32": "AAAAAA=="}
    with pytest.raises(InvalidRequest, match="exclude"):
        body_checks_from_headers(streaming(PayloadMode.STREAMING_UNSIGNED_TRAILER), headers)


def test_an_unauthenticated_signed_stream_cannot_be_checked() -> None:
    with pytest.raises(InvalidRequest, match="signed"):
        wrap_body(BytesBody(b""), None, {"x-amz-content-sha256": STREAMING_SIGNED}, LIMIT)


def test_the_decoded_size_of_an_aws_chunked_body() -> None:
    chunked = {"x-amz-content-sha256": STREAMING_UNSIGNED_TRAILER}
    assert decoded_size(chunked, 120) is None
    assert decoded_size({**chunked, "X-Amz-Decoded-Content-Length": "100"}, 120) == 100
    assert decoded_size({"x-amz-content-sha256": "UNSIGNED-PAYLOAD"}, 120) == 120
    assert decoded_size({}, None) is None
    with pytest.raises(InvalidRequest):
        decoded_size({**chunked, "x-amz-decoded-content-length": "-1"}, 120)


# -- aws-chunked bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("size", [97, 4096, 100_000])
async def test_a_chunked_body_comes_out_decoded_in_the_sizes_asked(size: int) -> None:
    pieces = [BIG[:300_000], BIG[300_000:300_001], BIG[300_001:]]
    headers = {
        "x-amz-content-sha256": STREAMING_SIGNED_TRAILER,
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(BIG)),
    }
    raw = signed_stream(pieces, trailer=("x-amz-checksum-crc32", crc32_b64(BIG)))
    verified = streaming(PayloadMode.STREAMING_SIGNED_TRAILER)
    data, body = await through(raw, verified, headers, size)
    assert data == BIG
    assert body.checksum(A.CRC32) == zlib.crc32(BIG).to_bytes(4, "big")


async def test_a_chunked_body_over_the_limit_is_too_large() -> None:
    raw = unsigned_stream([b"x" * 1000, b"y" * 1000])
    headers = {"x-amz-content-sha256": STREAMING_UNSIGNED_TRAILER}
    body, _ = wrap_body(BytesBody(raw), None, headers, max_bytes=1500)
    with pytest.raises(PayloadTooLarge):
        await read_all(body, 10_000)


async def test_a_chunked_body_ends_only_once_its_end_checked_out() -> None:
    headers = {**TRAILER_HEADERS, "x-amz-decoded-content-length": "5"}
    good = unsigned_stream([b"hello"], ("x-amz-checksum-crc32", crc32_b64(b"hello")))
    body, _ = wrap_body(BytesBody(good), None, headers, LIMIT)
    assert await body.read_up_to(5) == b"hello"  # what was asked: not yet known as the end
    assert await body.read_up_to(5) == b""
    assert body.checksum(A.CRC32) == zlib.crc32(b"hello").to_bytes(4, "big")
    for bad in (
        unsigned_stream([b"hello"], ("x-amz-checksum-crc32", crc32_b64(b"jello"))),
        unsigned_stream([b"hello"]),  # the declared trailer missing
        unsigned_stream([b"hell"], ("x-amz-checksum-crc32", crc32_b64(b"hell"))),  # short
    ):
        body, _ = wrap_body(BytesBody(bad), None, headers, LIMIT)
        with pytest.raises((BadDigest, IncompleteBody)):
            await read_all(body, 100)


async def test_what_boto3_streams_over_https_decodes_and_checks() -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)  # more than one of botocore's 1 MiB chunks
    request, raw = boto3_sent(
        lambda c: c.put_object(Bucket="b", Key="k", Body=data), endpoint="https://127.0.0.1:9443"
    )
    verified = accepted(request)
    assert verified.payload is PayloadMode.STREAMING_UNSIGNED_TRAILER
    headers = dict(request.headers)
    assert decoded_size(headers, len(raw)) == len(data)
    out, body = await through(raw, verified, headers)
    assert out == data
    assert body.checksum(A.CRC32) == zlib.crc32(data).to_bytes(4, "big")


async def test_what_boto3_sends_over_http_checks_sha256_and_checksum() -> None:
    data = os.urandom(500_000)
    request, raw = boto3_sent(lambda c: c.put_object(Bucket="b", Key="k", Body=data))
    verified = accepted(request)
    headers = dict(request.headers)
    assert "x-amz-checksum-crc32" in {name.lower() for name in headers}
    assert (await through(raw, verified, headers))[0] == data
    with pytest.raises(XAmzContentSHA256Mismatch):
        await through(raw[:-1] + bytes([raw[-1] ^ 1]), verified, headers)


# -- nothing is committed from a body that fails ------------------------------------------------

STRIPE_BYTES = 4096


def settings_in(tmp_path: Path, inline: bool) -> GatewaySettings:
    return GatewaySettings(
        data_dir=tmp_path / "gateway",
        stripe_size_bytes=STRIPE_BYTES,
        segment_max_stripes=4,
        write_stripes_in_flight=2,
        small_object_bytes=0,
        inline_object_bytes=1 << 20 if inline else 0,
        redundancy="ec:4+2",
    )


def row_counts(tmp_path: Path) -> tuple[int, int]:
    with sqlite3.connect(tmp_path / "metadata.db") as db:
        objects = db.execute("SELECT count(*) FROM objects").fetchone()[0]
        chunks = db.execute("SELECT count(*) FROM chunks").fetchone()[0]
    return int(objects), int(chunks)


def flipped_near_the_end(raw: bytes) -> bytes:
    """The body with a byte of its last data changed: past the stripes already stored."""
    at = raw.rindex(PIECES[-1]) + len(PIECES[-1]) - 1
    return raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :]


# Larger than ChunkedBody's raw reads, so that stripes are stored before the bad end shows.
PAYLOAD = os.urandom(STRIPE_BYTES * 40 + 5)
PIECES = [PAYLOAD[i : i + 10_000] for i in range(0, len(PAYLOAD), 10_000)]
SIGNED_BODY = signed_stream(PIECES)
TRAILER_BODY = unsigned_stream(PIECES, ("x-amz-checksum-crc32", crc32_b64(PAYLOAD)))
TRAILER_HEADERS = {
    "x-amz-content-sha256": STREAMING_UNSIGNED_TRAILER,
    "x-amz-trailer": "x-amz-checksum-crc32",
}
# verified, headers, the body, the same body failing its check, the error
CASES: dict[str, tuple[Verified, dict[str, str], bytes, bytes, type[DiststorageError]]] = {
    "sha256": (
        signed_hex(PAYLOAD),
        {"x-amz-content-sha256": hashlib.sha256(PAYLOAD).hexdigest()},
        PAYLOAD,
        flipped_near_the_end(PAYLOAD),
        XAmzContentSHA256Mismatch,
    ),
    "chunk signature": (
        streaming(PayloadMode.STREAMING_SIGNED),
        {"x-amz-content-sha256": STREAMING_SIGNED},
        SIGNED_BODY,
        flipped_near_the_end(SIGNED_BODY),
        SignatureDoesNotMatch,
    ),
    "trailer checksum": (
        streaming(PayloadMode.STREAMING_UNSIGNED_TRAILER),
        TRAILER_HEADERS,
        TRAILER_BODY,
        TRAILER_BODY.replace(crc32_b64(PAYLOAD).encode(), crc32_b64(b"other").encode()),
        BadDigest,
    ),
    "cut mid-chunk": (
        streaming(PayloadMode.STREAMING_SIGNED),
        {"x-amz-content-sha256": STREAMING_SIGNED},
        SIGNED_BODY,
        SIGNED_BODY[:-200],
        IncompleteBody,
    ),
}


def put(size: int) -> PutOperation:
    return PutOperation(DEFAULT_NAMESPACE, "key", "application/x-test", None, size, replace=True)


@pytest.mark.parametrize("inline", [False, True], ids=["streamed", "inline"])
@pytest.mark.parametrize("case", list(CASES))
async def test_the_good_body_commits(
    tmp_path: Path, sqlite_store: MetadataStore, case: str, inline: bool
) -> None:
    pipeline = await in_memory_pipeline(settings_in(tmp_path, inline), sqlite_store, 6, FakeClock())
    verified, headers, good, _, _ = CASES[case]
    body, _ = wrap_body(BytesBody(good), verified, headers, LIMIT, [A.CRC64NVME])
    info = await pipeline.writer.write(put(len(PAYLOAD)), body, checksum=body)
    assert info.size_bytes == len(PAYLOAD)
    # The client's checksum is kept with the object, else the one computed for it.
    algo = A.CRC32 if case == "trailer checksum" else A.CRC64NVME
    assert info.checksum is not None and info.checksum.algorithm == algo
    assert info.checksum.value == b64_of(algo, PAYLOAD)
    assert (await sqlite_store.get_info(DEFAULT_NAMESPACE, "key")).checksum == info.checksum
    assert row_counts(tmp_path)[0] == 1
    assert bool(pipeline.nodes.chunk_ids()) is not inline


@pytest.mark.parametrize("inline", [False, True], ids=["streamed", "inline"])
@pytest.mark.parametrize("case", list(CASES))
async def test_a_body_failing_its_check_commits_nothing(
    tmp_path: Path, sqlite_store: MetadataStore, case: str, inline: bool
) -> None:
    pipeline = await in_memory_pipeline(settings_in(tmp_path, inline), sqlite_store, 6, FakeClock())
    verified, headers, _, bad, error = CASES[case]
    body, _ = wrap_body(BytesBody(bad), verified, headers, LIMIT)
    with pytest.raises(error):
        await pipeline.writer.write(put(len(PAYLOAD)), body)
    assert row_counts(tmp_path) == (0, 0)
    assert pipeline.nodes.chunk_ids() == set()
    assert pipeline.writer.active_uploads() == []
    assert not await sqlite_store.key_exists(DEFAULT_NAMESPACE, "key")
    if not inline:  # the stripes before the failure did reach nodes, and were deleted
        assert sum(len(node.deleted) for node in pipeline.nodes.nodes.values()) >= 6
