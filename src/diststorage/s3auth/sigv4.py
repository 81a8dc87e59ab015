"""The request and verdict types of the SigV4 verifier (the verifier itself follows)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A request as received, before anything is decoded: what a signature covers."""

    method: str
    raw_path: str  # the path only, still percent-encoded
    raw_query: str  # without the "?"
    headers: Sequence[tuple[str, str]]  # every header as received, repeated ones repeated


class PayloadMode(StrEnum):
    SIGNED_HEX = "signed-hex"
    UNSIGNED = "unsigned"
    STREAMING_SIGNED = "streaming-signed"
    STREAMING_SIGNED_TRAILER = "streaming-signed-trailer"
    STREAMING_UNSIGNED_TRAILER = "streaming-unsigned-trailer"


@dataclass(frozen=True, slots=True)
class Verified:
    access_key_id: str
    payload: PayloadMode
    content_sha256: str | None
    presigned: bool
