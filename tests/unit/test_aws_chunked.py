"""The aws-chunked decoder: AWS's published example streams, every mode with 0-byte bodies,
the leniencies real clients need, the strict cases, bounded memory, and the same result
whatever the byte boundaries the body arrives in."""

from __future__ import annotations

import tracemalloc
import zlib
from collections.abc import Iterable
from datetime import UTC, datetime

import pytest
from aws_chunked_streams import (
    AMZ_DATE,
    KEY_ID,
    SCOPE,
    SECRET,
    TEST_SEED,
    crc32_b64,
    sha256_b64,
    signed_stream,
    signing_key,
    unsigned_stream,
)

from diststorage.core.errors import (
    BadDigest,
    IncompleteBody,
    InvalidDigest,
    InvalidRequest,
    MalformedTrailer,
    SignatureDoesNotMatch,
)
from diststorage.s3auth import (
    AwsChunkedDecoder,
    ChecksumAlgorithm,
    ChunkSeed,
    PayloadMode,
    SignedRequest,
    TrailerResult,
    parse_authentication,
    verify,
)

SIGNED = PayloadMode.STREAMING_SIGNED
SIGNED_TRAILER = PayloadMode.STREAMING_SIGNED_TRAILER
UNSIGNED_TRAILER = PayloadMode.STREAMING_UNSIGNED_TRAILER
STREAMING_MODES = (SIGNED, SIGNED_TRAILER, UNSIGNED_TRAILER)
CRC32_TRAILER = "x-amz-checksum-crc32"


def seed(signature: str = TEST_SEED) -> ChunkSeed:
    return ChunkSeed(signing_key(), SCOPE, AMZ_DATE, signature)


def decoder(
    mode: PayloadMode,
    trailer: str | None = None,
    length: int | None = None,
    **limits: int,
) -> AwsChunkedDecoder:
    return AwsChunkedDecoder(mode, seed() if mode.signs_chunks else None, trailer, length, **limits)


def run(decoding: AwsChunkedDecoder, parts: Iterable[bytes]) -> tuple[bytes, TrailerResult]:
    out = b"".join(bytes(piece) for part in parts for piece in decoding.feed(part))
    return out, decoding.finish()


def stream(mode: PayloadMode, pieces: list[bytes], final_crlf: bool = True) -> bytes:
    """A body of the mode, with a CRC32 trailer where the mode has one."""
    data = b"".join(pieces)
    trailer = (CRC32_TRAILER, crc32_b64(data)) if mode.has_trailer else None
    if mode.signs_chunks:
        return signed_stream(pieces, trailer=trailer, final_crlf=final_crlf)
    return unsigned_stream(pieces, trailer=trailer, final_crlf=final_crlf)


def trailer_of(mode: PayloadMode) -> str | None:
    return CRC32_TRAILER if mode.has_trailer else None


# -- AWS's published examples ------------------------------------------------------------------

EXAMPLE_HEADERS = [
    ("Host", "s3.amazonaws.com"),
    ("x-amz-date", AMZ_DATE),
    ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
    ("Content-Encoding", "aws-chunked"),
    ("x-amz-decoded-content-length", "66560"),
]


EXAMPLE_NOW = datetime(2013, 5, 24, tzinfo=UTC)


def example_request(
    payload: str, signed: str, signature: str, extra: list[tuple[str, str]]
) -> SignedRequest:
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={KEY_ID}/{SCOPE},SignedHeaders={signed},Signature={signature}"
    )
    headers = [
        *EXAMPLE_HEADERS,
        ("x-amz-content-sha256", payload),
        *extra,
        ("Authorization", authorization),
    ]
    return SignedRequest("PUT", "/examplebucket/chunkObject.txt", "", headers)


def example_body(signatures: list[str], tail: bytes) -> bytes:
    chunks = [b"a" * 65536, b"a" * 1024]
    body = b"".join(
        b"%x;chunk-signature=%s\r\n%s\r\n" % (len(c), s.encode(), c)
        for c, s in zip(chunks, signatures, strict=False)
    )
    return body + b"0;chunk-signature=%s\r\n" % signatures[2].encode() + tail


def test_the_published_streaming_example_verifies_end_to_end() -> None:
    """docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html, signatures as published."""
    request = example_request(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;"
        "x-amz-decoded-content-length;x-amz-storage-class",
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
        [("Content-Length", "66824")],
    )
    now = EXAMPLE_NOW
    claim = parse_authentication(request, now)
    assert claim is not None
    verified = verify(claim, SECRET, "us-east-1", now)
    assert verified.payload is SIGNED and verified.chunk_seed is not None
    body = example_body(
        [
            "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
            "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
            "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
        ],
        b"\r\n",
    )
    assert len(body) == 66824
    decoding = AwsChunkedDecoder(SIGNED, verified.chunk_seed, None, 66560)
    data, result = run(decoding, [body[:1000], body[1000:70000], body[70000:]])
    assert data == b"a" * 66560
    assert result == TrailerResult(66560, None, None)


def test_the_published_trailer_example_verifies_end_to_end() -> None:
    """docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html."""
    request = example_request(
        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "content-encoding;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;"
        "x-amz-storage-class;x-amz-trailer",
        "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
        [("x-amz-trailer", "x-amz-checksum-crc32c")],
    )
    now = EXAMPLE_NOW
    claim = parse_authentication(request, now)
    assert claim is not None
    verified = verify(claim, SECRET, "us-east-1", now)
    body = example_body(
        [
            "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
            "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
            "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
        ],
        b"x-amz-checksum-crc32c:sOO8/Q==\r\n"
        b"x-amz-trailer-signature:"
        b"d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435\r\n\r\n",
    )
    decoding = AwsChunkedDecoder(
        SIGNED_TRAILER, verified.chunk_seed, "x-amz-checksum-crc32c", 66560
    )
    data, result = run(decoding, [body])
    assert data == b"a" * 66560
    assert result.checksum_algorithm is ChecksumAlgorithm.CRC32C
    assert result.checksum is not None and result.checksum.hex() == "b0e3bcfd"


# -- every mode ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", STREAMING_MODES)
@pytest.mark.parametrize("sizes", [[], [1], [8192, 8192, 100], [70000]], ids=str)
def test_every_mode_decodes_what_was_sent(mode: PayloadMode, sizes: list[int]) -> None:
    pieces = [bytes([i % 251]) * size for i, size in enumerate(sizes)]
    data = b"".join(pieces)
    decoded, result = run(decoder(mode, trailer_of(mode), len(data)), [stream(mode, pieces)])
    assert decoded == data
    assert result.decoded_bytes == len(data)
    if mode.has_trailer:
        assert result.checksum_algorithm is ChecksumAlgorithm.CRC32
        assert result.checksum == zlib.crc32(data).to_bytes(4, "big")


@pytest.mark.parametrize("mode", STREAMING_MODES)
def test_a_body_split_at_any_byte_decodes_the_same(mode: PayloadMode) -> None:
    pieces = [b"hello", b"wor", b"ld!"]
    body = stream(mode, pieces)
    for cut in range(len(body) + 1):
        for second_cut in (cut, min(cut + 7, len(body))):
            parts = [body[:cut], body[cut:second_cut], body[second_cut:]]
            decoded, result = run(decoder(mode, trailer_of(mode), 11), parts)
            assert (decoded, result.decoded_bytes) == (b"helloworld!", 11), (cut, second_cut)
    one_at_a_time = [body[i : i + 1] for i in range(len(body))]
    assert run(decoder(mode, trailer_of(mode)), one_at_a_time)[0] == b"helloworld!"


@pytest.mark.parametrize("mode", STREAMING_MODES)
def test_a_bad_stream_fails_whatever_the_byte_boundaries(mode: PayloadMode) -> None:
    body = bytearray(stream(mode, [b"hello", b"world"]))
    body[body.index(b"world")] = ord("W")
    for cut in range(len(body) + 1):
        with pytest.raises((SignatureDoesNotMatch, BadDigest)):
            run(decoder(mode, trailer_of(mode)), [bytes(body[:cut]), bytes(body[cut:])])


def test_data_comes_out_as_it_arrives_and_unbuffered() -> None:
    decoding = decoder(UNSIGNED_TRAILER)
    assert decoding.feed(b"a;ignored\r\n") == []
    first = decoding.feed(b"01234")
    assert [bytes(p) for p in first] == [b"01234"]
    assert [bytes(p) for p in decoding.feed(b"56789\r\n0\r\n\r\n")] == [b"56789"]
    assert decoding.finish().decoded_bytes == 10


# -- lenient ------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", STREAMING_MODES)
def test_the_final_crlf_may_be_missing(mode: PayloadMode) -> None:
    body = stream(mode, [b"abc"], final_crlf=False)
    assert run(decoder(mode, trailer_of(mode), 3), [body])[0] == b"abc"


def test_the_last_trailer_line_may_lack_its_crlf_too() -> None:
    body = unsigned_stream([b"abc"], (CRC32_TRAILER, crc32_b64(b"abc")), final_crlf=False)
    assert body.endswith(b"\r\n")
    assert run(decoder(UNSIGNED_TRAILER, CRC32_TRAILER), [body[:-2]])[0] == b"abc"


@pytest.mark.parametrize("mode", [SIGNED_TRAILER, UNSIGNED_TRAILER])
def test_a_newline_before_the_trailer_crlf_is_accepted(mode: PayloadMode) -> None:
    body = stream(mode, [b"abc"])
    line_end = body.index(b"\r\n", body.index(CRC32_TRAILER.encode()))
    body = body[:line_end] + b"\n" + body[line_end:]
    assert run(decoder(mode, CRC32_TRAILER), [body])[0] == b"abc"


def test_chunk_and_trailer_signatures_are_ignored_in_unsigned_mode() -> None:
    body = signed_stream([b"abc", b"de"], trailer=(CRC32_TRAILER, crc32_b64(b"abcde")))
    decoded, result = run(decoder(UNSIGNED_TRAILER, CRC32_TRAILER, 5), [body])
    assert (decoded, result.checksum_algorithm) == (b"abcde", ChecksumAlgorithm.CRC32)


def test_botocore_unsigned_trailer_body_without_a_checksum_decodes() -> None:
    """botocore's AwsChunkedWrapper ends ``0 CRLF CRLF`` when it has no checksum to send."""
    assert run(decoder(UNSIGNED_TRAILER), [b"3\r\nabc\r\n0\r\n\r\n"])[0] == b"abc"


def test_a_sha256_trailer_is_checked() -> None:
    body = unsigned_stream([b"abc"], ("x-amz-checksum-sha256", sha256_b64(b"abc")))
    result = run(decoder(UNSIGNED_TRAILER, "x-amz-checksum-sha256"), [body])[1]
    assert result.checksum_algorithm is ChecksumAlgorithm.SHA256


# -- strict -------------------------------------------------------------------------------------


def test_a_bad_chunk_signature_fails_at_that_chunks_end() -> None:
    body = signed_stream([b"first", b"second"])
    tampered = body.replace(b"first", b"FIRST")
    decoding = decoder(SIGNED)
    first_chunk_end = tampered.index(b"FIRST") + len(b"FIRST")
    decoding.feed(tampered[: first_chunk_end - 1])
    with pytest.raises(SignatureDoesNotMatch) as caught:
        decoding.feed(tampered[first_chunk_end - 1 : first_chunk_end])
    assert caught.value.string_to_sign.startswith("AWS4-HMAC-SHA256-PAYLOAD\n")


def test_the_final_chunk_is_signed_too() -> None:
    body = signed_stream([b"abc"])
    final = body.index(b"0;chunk-signature=") + len(b"0;chunk-signature=")
    forged = body[:final] + b"0" * 64 + body[final + 64 :]
    with pytest.raises(SignatureDoesNotMatch):
        run(decoder(SIGNED), [forged])


def test_a_chunk_signature_chains_on_the_seed() -> None:
    with pytest.raises(SignatureDoesNotMatch):
        run(decoder(SIGNED), [signed_stream([b"abc"], seed="cd" * 32)])


def test_a_bad_trailer_signature_is_refused() -> None:
    body = stream(SIGNED_TRAILER, [b"abc"])
    at = body.index(b"x-amz-trailer-signature:") + len(b"x-amz-trailer-signature:")
    forged = body[:at] + b"f" * 64 + body[at + 64 :]
    with pytest.raises(SignatureDoesNotMatch):
        run(decoder(SIGNED_TRAILER, CRC32_TRAILER), [forged])


def test_a_signed_trailer_without_its_signature_is_refused() -> None:
    body = signed_stream([b"abc"])[:-2] + f"{CRC32_TRAILER}:{crc32_b64(b'abc')}\r\n\r\n".encode()
    with pytest.raises(MalformedTrailer):
        run(decoder(SIGNED_TRAILER, CRC32_TRAILER), [body])


@pytest.mark.parametrize("mode", [SIGNED_TRAILER, UNSIGNED_TRAILER])
def test_a_wrong_trailer_checksum_is_bad_digest(mode: PayloadMode) -> None:
    trailer = (CRC32_TRAILER, crc32_b64(b"abd"))
    body = (
        signed_stream([b"abc"], trailer=trailer)
        if mode.signs_chunks
        else unsigned_stream([b"abc"], trailer)
    )
    with pytest.raises(BadDigest):
        run(decoder(mode, CRC32_TRAILER), [body])


def test_a_trailer_checksum_that_is_no_digest_is_invalid() -> None:
    body = unsigned_stream([b"abc"], (CRC32_TRAILER, "not base64!"))
    with pytest.raises(InvalidDigest):
        run(decoder(UNSIGNED_TRAILER, CRC32_TRAILER), [body])


def test_a_declared_trailer_that_is_missing_is_refused() -> None:
    with pytest.raises(IncompleteBody, match="lacks"):
        run(decoder(UNSIGNED_TRAILER, CRC32_TRAILER), [unsigned_stream([b"abc"])])


def test_a_trailer_not_declared_is_refused() -> None:
    body = unsigned_stream([b"abc"], (CRC32_TRAILER, crc32_b64(b"abc")))
    with pytest.raises(MalformedTrailer):
        run(decoder(UNSIGNED_TRAILER), [body])
    with pytest.raises(MalformedTrailer):
        run(decoder(SIGNED), [signed_stream([b"abc"])[:-2] + body[body.index(b"x-amz") :]])


@pytest.mark.parametrize("declared", [2, 4, 0])
def test_a_decoded_length_other_than_declared_is_refused(declared: int) -> None:
    with pytest.raises(IncompleteBody, match="x-amz-decoded-content-length"):
        run(decoder(SIGNED, length=declared), [signed_stream([b"abc"])])


@pytest.mark.parametrize("mode", STREAMING_MODES)
def test_a_body_cut_anywhere_before_its_end_is_incomplete(mode: PayloadMode) -> None:
    body = stream(mode, [b"abcdef", b"gh"])
    end_of_chunks = body.index(b"\r\n0") + 2
    for cut in range(end_of_chunks):
        with pytest.raises(IncompleteBody):
            run(decoder(mode, trailer_of(mode)), [body[:cut]])


@pytest.mark.parametrize(
    "body",
    [
        b"3\r\nabc\r\n0\r\n\r\nX",  # bytes after the end
        b"3\r\nabcd\r\n0\r\n\r\n",  # data longer than its size
        b"x3\r\nabc\r\n0\r\n\r\n",  # not hex
        b"0x3\r\nabc\r\n0\r\n\r\n",
        b"1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n",
        b"3\nabc\r\n0\r\n\r\n",  # a header line without CR
        b"\r\n",  # no size at all
    ],
)
def test_broken_framing_is_incomplete_body(body: bytes) -> None:
    with pytest.raises(IncompleteBody):
        run(decoder(UNSIGNED_TRAILER), [body])


def test_a_signed_chunk_without_its_signature_is_refused() -> None:
    with pytest.raises(IncompleteBody, match="chunk-signature"):
        run(decoder(SIGNED), [b"3\r\nabc\r\n0\r\n\r\n"])


def test_a_trailer_line_without_a_colon_is_malformed() -> None:
    with pytest.raises(MalformedTrailer):
        run(decoder(UNSIGNED_TRAILER, CRC32_TRAILER), [b"0\r\nnonsense\r\n\r\n"])


@pytest.mark.parametrize(
    ("mode", "trailer"),
    [
        (UNSIGNED_TRAILER, "x-amz-checksum-crc32, x-amz-checksum-sha1"),
        (UNSIGNED_TRAILER, "x-amz-meta-foo"),
        (SIGNED, CRC32_TRAILER),
    ],
)
def test_a_trailer_declaration_we_cannot_honour_is_refused(mode: PayloadMode, trailer: str) -> None:
    with pytest.raises(InvalidRequest):
        decoder(mode, trailer)


def test_raw_modes_are_no_aws_chunked() -> None:
    with pytest.raises(ValueError):
        AwsChunkedDecoder(PayloadMode.UNSIGNED, None, None, None)
    with pytest.raises(ValueError):
        AwsChunkedDecoder(SIGNED, None, None, None)


# -- bounds -------------------------------------------------------------------------------------


def peak_bytes_while(action: object) -> int:
    assert callable(action)
    tracemalloc.start()
    try:
        action()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_an_endless_header_line_fails_in_bounded_memory() -> None:
    garbage = b"f" * (8 * 1024 * 1024)
    decoding = decoder(UNSIGNED_TRAILER)

    def feed() -> None:
        with pytest.raises(IncompleteBody, match="exceeds 4096"):
            decoding.feed(garbage)

    assert peak_bytes_while(feed) < 64 * 1024


def test_an_endless_trailer_fails_in_bounded_memory() -> None:
    decoding = decoder(UNSIGNED_TRAILER, CRC32_TRAILER)
    decoding.feed(b"0\r\n")
    lines = b"x-amz-meta-a:" + b"b" * 100 + b"\r\n"

    def feed() -> None:
        with pytest.raises(MalformedTrailer):
            for _ in range(100_000):
                decoding.feed(lines)

    assert peak_bytes_while(feed) < 64 * 1024


def test_an_oversized_chunk_is_refused_before_its_data() -> None:
    with pytest.raises(IncompleteBody, match="exceeds"):
        decoder(UNSIGNED_TRAILER).feed(b"1000001\r\n")
    small = decoder(UNSIGNED_TRAILER, max_chunk_bytes=10)
    with pytest.raises(IncompleteBody, match="exceeds"):
        small.feed(b"b\r\n")


def test_a_large_chunk_passes_through_without_a_copy() -> None:
    data = b"z" * (16 * 1024 * 1024)
    body = b"1000000\r\n" + data + b"\r\n0\r\n\r\n"
    decoding = decoder(UNSIGNED_TRAILER)
    pieces: list[memoryview] = []
    peak = peak_bytes_while(lambda: pieces.extend(decoding.feed(body)))
    assert peak < 1024 * 1024
    assert sum(len(p) for p in pieces) == len(data)
    assert decoding.finish().decoded_bytes == len(data)
