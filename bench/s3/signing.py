"""The CPU cost of checking a signature: ``parse_authentication`` + ``verify`` of
``diststorage.s3auth.sigv4``, in process, over many requests signed beforehand.

Every request is distinct (its own key and path), signed by our signer
(``diststorage.s3auth.signer``) the way boto3 signs over http: a GET with UNSIGNED-PAYLOAD, a
PUT with its body's sha256, a Content-Type and metadata, and a presigned GET. The signing key
of (key, date, region) is cached by the verifier, as in the gateway, where one client's
requests share it; the first request of a case pays for it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

from bench.s3.profile import SigningCase
from diststorage.core.credentials import Credentials
from diststorage.s3auth import (
    SignedRequest,
    parse_authentication,
    presign_url,
    sign_request,
    verify,
)

HOST = "127.0.0.1:9000"
REGION = "us-east-1"
BODY = bytes(4096)


def _as_received(method: str, url: str, headers: dict[str, str]) -> SignedRequest:
    parts = urlsplit(url)
    received = [("Host", HOST), *headers.items()]
    return SignedRequest(method, parts.path, parts.query, received)


def _get(credentials: Credentials, index: int, now: datetime) -> SignedRequest:
    url = f"http://{HOST}/bench/objects/key-{index:08d}"
    added = sign_request(
        "GET", url, {}, "UNSIGNED-PAYLOAD",
        credentials.access_key_id, credentials.secret_access_key, REGION, now,
    )  # fmt: skip
    return _as_received("GET", url, added)


def _put(credentials: Credentials, index: int, now: datetime) -> SignedRequest:
    url = f"http://{HOST}/bench/objects/key-{index:08d}"
    given = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(len(BODY)),
        "x-amz-meta-index": str(index),
    }
    sha256 = hashlib.sha256(BODY).hexdigest()
    added = sign_request(
        "PUT", url, given, sha256,
        credentials.access_key_id, credentials.secret_access_key, REGION, now,
    )  # fmt: skip
    return _as_received("PUT", url, {**given, **added})


def _presigned(credentials: Credentials, index: int, now: datetime) -> SignedRequest:
    url = presign_url(
        "GET", f"http://{HOST}/bench/objects/key-{index:08d}",
        credentials.access_key_id, credentials.secret_access_key, 3600, REGION, now,
    )  # fmt: skip
    return _as_received("GET", url, {})


CASES: dict[str, Callable[[Credentials, int, datetime], SignedRequest]] = {
    "GET, header, UNSIGNED-PAYLOAD": _get,
    "PUT, header, sha256 + 3 headers": _put,
    "GET, presigned": _presigned,
}


def time_case(name: str, credentials: Credentials, count: int) -> SigningCase:
    """Signs ``count`` requests (untimed), then times checking them all; raises if any fails."""
    now = datetime.now(UTC)
    make = CASES[name]
    requests = [make(credentials, index, now) for index in range(count)]
    secret = credentials.secret_access_key
    started = time.perf_counter()
    for request in requests:
        claim = parse_authentication(request, now)
        if claim is None:
            raise AssertionError(f"{name}: a signed request reads as unsigned")
        verify(claim, secret, REGION, now)
    return SigningCase(name, count, time.perf_counter() - started)


def run_signing(credentials: Credentials, count: int) -> list[SigningCase]:
    return [time_case(name, credentials, count) for name in CASES]
