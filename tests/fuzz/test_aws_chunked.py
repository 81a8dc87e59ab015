"""The aws-chunked decoder: any body, framed in any chunk sizes by an independent encoder
(tests/unit/aws_chunked_streams.py) and fed in any pieces, decodes to the same bytes; any
change to a signed stream is an error, never other bytes; garbage is one of the documented
errors."""

from __future__ import annotations

import contextlib

from aws_chunked_streams import (
    AMZ_DATE,
    SCOPE,
    TEST_SEED,
    crc32_b64,
    signed_stream,
    signing_key,
    unsigned_stream,
)
from hypothesis import example, given
from hypothesis import strategies as st

from diststorage.core.errors import (
    BadDigest,
    IncompleteBody,
    InvalidDigest,
    MalformedTrailer,
    SignatureDoesNotMatch,
)
from diststorage.s3auth import AwsChunkedDecoder, ChunkSeed, PayloadMode

# What ``feed`` and ``finish`` may raise (their docstrings).
from .strategies import mutated, split_at

DOCUMENTED = (SignatureDoesNotMatch, IncompleteBody, MalformedTrailer, BadDigest, InvalidDigest)
CRC32_TRAILER = "x-amz-checksum-crc32"
MODES = st.sampled_from(
    [
        PayloadMode.STREAMING_SIGNED,
        PayloadMode.STREAMING_SIGNED_TRAILER,
        PayloadMode.STREAMING_UNSIGNED_TRAILER,
    ]
)
SIGNED_MODES = st.sampled_from([PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER])
MAX_LINE = 256


def _decoder(mode: PayloadMode, length: int | None) -> AwsChunkedDecoder:
    seed = ChunkSeed(signing_key(), SCOPE, AMZ_DATE, TEST_SEED) if mode.signs_chunks else None
    trailer = CRC32_TRAILER if mode.has_trailer else None
    return AwsChunkedDecoder(mode, seed, trailer, length, max_line_bytes=MAX_LINE)


def _encoded(mode: PayloadMode, pieces: list[bytes], final_crlf: bool) -> bytes:
    trailer = (CRC32_TRAILER, crc32_b64(b"".join(pieces))) if mode.has_trailer else None
    if mode.signs_chunks:
        return signed_stream(pieces, trailer=trailer, final_crlf=final_crlf)
    return unsigned_stream(pieces, trailer=trailer, final_crlf=final_crlf)


def _decode(mode: PayloadMode, stream: bytes, cuts: list[int], length: int | None) -> bytes:
    decoder = _decoder(mode, length)
    out = b"".join(bytes(view) for part in split_at(stream, cuts) for view in decoder.feed(part))
    result = decoder.finish()
    assert result.decoded_bytes == len(out)
    return out


@st.composite
def framed(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A body, and the same body cut into the chunks an encoder would send (no empty one)."""
    body = draw(st.binary(max_size=600))
    sizes = draw(st.lists(st.integers(1, 200), max_size=20))
    pieces, at = [], 0
    for size in sizes:
        if at < len(body):
            pieces.append(body[at : at + size])
            at += size
    if at < len(body):
        pieces.append(body[at:])
    return body, pieces


@given(MODES, framed(), st.lists(st.integers(0, 10_000)), st.booleans(), st.booleans())
def test_any_framing_in_any_pieces_decodes_to_the_body(
    mode: PayloadMode,
    body_and_pieces: tuple[bytes, list[bytes]],
    cuts: list[int],
    final_crlf: bool,
    declare_length: bool,
) -> None:
    body, pieces = body_and_pieces
    stream = _encoded(mode, pieces, final_crlf)
    assert _decode(mode, stream, cuts, len(body) if declare_length else None) == body


@given(
    SIGNED_MODES,
    framed(),
    st.integers(0, 10_000),
    st.integers(0, 255),
    st.integers(0, 2),
    st.lists(st.integers(0, 10_000), max_size=4),
)
@example(PayloadMode.STREAMING_SIGNED, (b"abc", [b"abc"]), 3, ord("d"), 0, [])
@example(PayloadMode.STREAMING_SIGNED, (b"", []), 18, 0x80, 0, [])  # a non-ASCII signature
@example(PayloadMode.STREAMING_SIGNED_TRAILER, (b"a", [b"a"]), 250, 0xFF, 0, [])
def test_a_changed_signed_stream_is_an_error_never_other_bytes(
    mode: PayloadMode,
    body_and_pieces: tuple[bytes, list[bytes]],
    at: int,
    byte: int,
    how: int,
    cuts: list[int],
) -> None:
    body, pieces = body_and_pieces
    stream = _encoded(mode, pieces, final_crlf=True)
    changed = mutated(stream, at, byte, how)
    if changed == stream:
        return
    try:
        out = _decode(mode, changed, cuts, None)
    except DOCUMENTED:
        return
    assert out == body


def _garbage() -> st.SearchStrategy[bytes]:
    line = st.one_of(
        st.from_regex(rb"[0-9a-fA-F]{1,17}(;chunk-signature=[0-9a-f]{0,64})?\r?\n", fullmatch=True),
        st.sampled_from([b"\r\n", b"\n", b"0\r\n", b"x-amz-checksum-crc32:AAAAAA==\r\n"]),
        st.binary(max_size=40),
    )
    return st.lists(line, max_size=10).map(b"".join)


@given(MODES, _garbage(), st.lists(st.integers(0, 10_000), max_size=4))
@example(PayloadMode.STREAMING_UNSIGNED_TRAILER, b"0\r\nx-amz-checksum-crc32:\xff\xfe\r\n\r\n", [])
@example(PayloadMode.STREAMING_UNSIGNED_TRAILER, b"0\r\n" + b"a" * (MAX_LINE + 1), [])
@example(PayloadMode.STREAMING_SIGNED, b"ffffffffffffffff;chunk-signature=\r\n", [])
def test_garbage_is_one_of_the_documented_errors(
    mode: PayloadMode, stream: bytes, cuts: list[int]
) -> None:
    with contextlib.suppress(*DOCUMENTED):
        _decode(mode, stream, cuts, None)
