"""What ``x-amz-content-sha256`` says about the body, and what a chunked decoder needs to check
the chunk signatures that follow.

The framing follows this value and never ``Content-Encoding``: rclone has sent
``Content-Encoding: aws-chunked`` over a raw ``UNSIGNED-PAYLOAD`` body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from diststorage.core.errors import InvalidRequest, UnsupportedSignature
from diststorage.s3auth.canonical import UNSIGNED_PAYLOAD

STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
_ECDSA_STREAMING = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
_HEX_SHA256 = re.compile(r"[0-9a-fA-F]{64}")


class PayloadMode(StrEnum):
    SIGNED_HEX = "signed-hex"  # raw body; its sha256 was signed
    UNSIGNED = "unsigned"  # raw body; only a checksum header, if sent, vouches for it
    STREAMING_SIGNED = "streaming-signed"  # aws-chunked, every chunk signed
    STREAMING_SIGNED_TRAILER = "streaming-signed-trailer"  # the same, then a signed trailer
    STREAMING_UNSIGNED_TRAILER = "streaming-unsigned-trailer"  # aws-chunked, trailer checksum

    @property
    def is_chunked(self) -> bool:
        return self not in (PayloadMode.SIGNED_HEX, PayloadMode.UNSIGNED)

    @property
    def signs_chunks(self) -> bool:
        return self in (PayloadMode.STREAMING_SIGNED, PayloadMode.STREAMING_SIGNED_TRAILER)

    @property
    def has_trailer(self) -> bool:
        return self in (
            PayloadMode.STREAMING_SIGNED_TRAILER,
            PayloadMode.STREAMING_UNSIGNED_TRAILER,
        )


_NAMED = {
    UNSIGNED_PAYLOAD: PayloadMode.UNSIGNED,
    STREAMING_SIGNED: PayloadMode.STREAMING_SIGNED,
    STREAMING_SIGNED_TRAILER: PayloadMode.STREAMING_SIGNED_TRAILER,
    STREAMING_UNSIGNED_TRAILER: PayloadMode.STREAMING_UNSIGNED_TRAILER,
}


def payload_mode(value: str) -> tuple[PayloadMode, str | None]:
    """The mode an ``x-amz-content-sha256`` value names, with the lowercase hex sha256 for
    SIGNED_HEX. Raises UnsupportedSignature for SigV4A streaming, InvalidRequest otherwise."""
    if _HEX_SHA256.fullmatch(value):
        return PayloadMode.SIGNED_HEX, value.lower()
    if value in _NAMED:
        return _NAMED[value], None
    if value.startswith(_ECDSA_STREAMING):
        raise UnsupportedSignature("SigV4A (ECDSA) streaming payloads are not supported")
    raise InvalidRequest(
        "x-amz-content-sha256 must be a hex sha256, UNSIGNED-PAYLOAD or a STREAMING-* value,"
        f" not {value[:80]!r}"
    )


@dataclass(frozen=True, slots=True)
class ChunkSeed:
    """What checks an aws-chunked body's chained signatures: the request's signing key and
    scope, its X-Amz-Date, and the signature of its headers, which the first chunk chains on."""

    signing_key: bytes
    scope: str
    amz_date: str
    seed_signature: str

    def __repr__(self) -> str:
        # The signing key is as good as the secret for a day: keep it out of logs.
        return f"ChunkSeed(scope={self.scope!r}, amz_date={self.amz_date!r})"
