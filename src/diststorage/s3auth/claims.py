"""The verifier's types: the request as it arrived, what it claims, and what was proven."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from diststorage.s3auth.payload import ChunkSeed, PayloadMode


@dataclass(frozen=True)
class SignedRequest:
    """A request as received, before anything is decoded.

    ``raw_path`` is the path only, still percent-encoded (aiohttp's ``request.raw_path`` less
    what follows a ``?``); ``raw_query`` is what follows the ``?``, without it. ``headers`` has
    every header as received, repeated ones repeated (aiohttp's ``request.headers.items()``).
    Text is as aiohttp decodes it, UTF-8 with ``surrogateescape``, so that the wire bytes can be
    signed: a client that signs a header's UTF-8 but sends it as Latin-1 (botocore with
    non-ASCII metadata) fails here as it fails on AWS.

    ``bucket_in_host`` is the bucket of a virtual-hosted request (``bucket.s3.example``), which
    SigV2 signs as if it led the path; SigV4 signs the path as sent and ignores it.
    """

    method: str
    raw_path: str
    raw_query: str
    headers: Sequence[tuple[str, str]]
    bucket_in_host: str | None = None


class AuthScheme(StrEnum):
    HEADER = "header"  # SigV4, Authorization header
    PRESIGNED = "presigned"  # SigV4, X-Amz-* query parameters
    PRESIGNED_V2 = "presigned-v2"  # SigV2, AWSAccessKeyId / Signature / Expires


@dataclass(frozen=True)
class Claim:
    """Who a request says it comes from, and everything needed to check it once that key's
    secret is known. Holds no secret; ``canonical`` holds what the signature must cover."""

    access_key_id: str
    scheme: AuthScheme
    signature: str
    payload: PayloadMode
    content_sha256: str | None
    # SigV4: the canonical requests, as received then with the path re-encoded (when that
    # differs); SigV2: the strings to sign, the same way.
    canonical: tuple[str, ...]
    signed_at: datetime | None = None  # SigV4 only
    expires_at: datetime | None = None  # presigned only
    region: str = ""  # SigV4: the credential scope's
    scope_date: str = ""  # SigV4: yyyymmdd
    amz_date: str = ""  # SigV4: yyyymmddThhmmssZ


@dataclass(frozen=True)
class Verified:
    """A request whose signature checked out. The body is still to be verified against
    ``payload``: its sha256 (``content_sha256``, SIGNED_HEX), or its chunk signatures, which
    ``chunk_seed`` checks (the two STREAMING_SIGNED modes)."""

    access_key_id: str
    payload: PayloadMode
    content_sha256: str | None
    presigned: bool
    chunk_seed: ChunkSeed | None = None
