"""aws-chunked bodies built for tests, by an implementation independent of ``s3auth``.

Only hashlib and hmac, written from AWS's description of the format, so that a test of the
decoder does not check it against itself. The credentials and date are those of AWS's
published examples (``examplebucket``, 2013-05-24).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import zlib

KEY_ID = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
AMZ_DATE = "20130524T000000Z"
REGION = "us-east-1"
SCOPE = f"20130524/{REGION}/s3/aws4_request"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Any 64 hex digits will do as the seed where a test builds its own stream.
TEST_SEED = "ab" * 32


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def signing_key(secret: str = SECRET, date: str = AMZ_DATE[:8], region: str = REGION) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, "s3", "aws4_request"):
        key = _hmac(key, part)
    return key


def chunk_signatures(seed: str, chunks: list[bytes], key: bytes | None = None) -> list[str]:
    """The chained signature of each chunk (the final empty one included, if given)."""
    key = key or signing_key()
    signatures = []
    previous = seed
    for chunk in chunks:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                AMZ_DATE,
                SCOPE,
                previous,
                EMPTY_SHA256,
                hashlib.sha256(chunk).hexdigest(),
            ]
        )
        previous = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        signatures.append(previous)
    return signatures


def trailer_signature(previous: str, trailer_lines: str, key: bytes | None = None) -> str:
    digest = hashlib.sha256(trailer_lines.encode()).hexdigest()
    to_sign = "\n".join(["AWS4-HMAC-SHA256-TRAILER", AMZ_DATE, SCOPE, previous, digest])
    return hmac.new(key or signing_key(), to_sign.encode(), hashlib.sha256).hexdigest()


def signed_stream(
    pieces: list[bytes],
    seed: str = TEST_SEED,
    trailer: tuple[str, str] | None = None,
    final_crlf: bool = True,
) -> bytes:
    """``hex;chunk-signature=sig CRLF data CRLF`` per piece, the signed 0-chunk, then either a
    CRLF or the trailer line, its signature and a CRLF (the last CRLF left out on request)."""
    signatures = chunk_signatures(seed, [*pieces, b""])
    body = b"".join(
        b"%x;chunk-signature=%s\r\n%s\r\n" % (len(piece), sig.encode(), piece)
        for piece, sig in zip(pieces, signatures, strict=False)
    )
    body += b"0;chunk-signature=%s\r\n" % signatures[-1].encode()
    if trailer is not None:
        line = f"{trailer[0]}:{trailer[1]}\n"
        signature = trailer_signature(signatures[-1], line)
        body += f"{trailer[0]}:{trailer[1]}\r\nx-amz-trailer-signature:{signature}\r\n".encode()
    return body + (b"\r\n" if final_crlf else b"")


def unsigned_stream(
    pieces: list[bytes], trailer: tuple[str, str] | None = None, final_crlf: bool = True
) -> bytes:
    """``hex CRLF data CRLF`` per piece, ``0 CRLF``, the trailer line if any, and a CRLF."""
    body = b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n"
    if trailer is not None:
        body += f"{trailer[0]}:{trailer[1]}\r\n".encode()
    return body + (b"\r\n" if final_crlf else b"")


def crc32_b64(data: bytes) -> str:
    """CRC32 by zlib, not awscrt: the checksum of a trailer, computed independently."""
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()
