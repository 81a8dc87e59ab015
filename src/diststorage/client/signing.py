"""SigV4 signatures on the client's requests, so that a gateway knows whose they are.

A body given as bytes is signed with its sha256 (the gateway checks the bytes it receives
against it); a body that streams (a file, an iterable of pieces) is sent ``UNSIGNED-PAYLOAD``,
since hashing it first would mean reading it twice. The signature covers the method, the path
and query as sent, and every header given.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from diststorage.core.credentials import Credentials
from diststorage.s3auth.signer import sign_request

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
DEFAULT_REGION = "us-east-1"


def payload_hash(body: object) -> str:
    """What ``x-amz-content-sha256`` says of a body: its sha256 when it is bytes (or none)."""
    if body is None:
        return hashlib.sha256(b"").hexdigest()
    if isinstance(body, bytes | bytearray | memoryview):
        return hashlib.sha256(body).hexdigest()
    return UNSIGNED_PAYLOAD


def signed(
    method: str,
    url: str,
    body: object,
    headers: Mapping[str, str],
    credentials: Credentials,
    region: str = DEFAULT_REGION,
) -> dict[str, str]:
    """``headers`` with the signature's headers added; ``url`` is the full URL as sent."""
    added = sign_request(
        method,
        url,
        headers,
        payload_hash(body),
        credentials.access_key_id,
        credentials.secret_access_key,
        region,
    )
    return {**headers, **added}
