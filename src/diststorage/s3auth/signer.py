"""SigV4 signing for our own client and CLI, and for tests that need a signed request.

It uses the verifier's canonicalisation (``canonical.py``), so the tests check it against
botocore's signatures rather than against the verifier. The URL's path and query must already
be percent-encoded as they will be sent: the signature covers them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import SplitResult, quote, urlsplit, urlunsplit

from diststorage.s3auth.canonical import (
    ALGORITHM,
    AMZ_DATE_FORMAT,
    UNSIGNED_PAYLOAD,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    credential_scope,
    signature_hex,
    signing_key,
    string_to_sign,
)

MAX_EXPIRES_S = 7 * 24 * 3600
# Headers that proxies and HTTP libraries add, drop or rewrite: signing them would break the
# request on its way (botocore leaves out the same).
UNSIGNED_HEADERS = frozenset(
    {"authorization", "expect", "transfer-encoding", "user-agent", "x-amzn-trace-id"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def sign_request(
    method: str,
    url: str,
    headers: Mapping[str, str],
    payload_sha256: str,
    access_key_id: str,
    secret: str,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> dict[str, str]:
    """The headers to add for SigV4 header authentication: Authorization, X-Amz-Date and
    x-amz-content-sha256 (``payload_sha256``: the body's hex sha256, ``UNSIGNED-PAYLOAD`` or a
    ``STREAMING-*`` value). Every header given is signed, but those in ``UNSIGNED_HEADERS``,
    and ``host`` is taken from the URL unless given."""
    amz_date = (now or datetime.now(UTC)).strftime(AMZ_DATE_FORMAT)
    parts = urlsplit(url)
    to_sign = {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() not in UNSIGNED_HEADERS
    }
    to_sign.setdefault("host", _host(parts))
    to_sign["x-amz-date"] = amz_date
    to_sign["x-amz-content-sha256"] = payload_sha256
    signed = sorted(to_sign)
    canonical = canonical_request(
        method.upper(),
        canonical_uri(parts.path),
        canonical_query(parts.query),
        canonical_headers({name: [value] for name, value in to_sign.items()}, signed),
        signed,
        payload_sha256,
    )
    scope = credential_scope(amz_date[:8], region)
    key = signing_key(access_key_id, secret, amz_date[:8], region)
    signature = signature_hex(key, string_to_sign(amz_date, scope, canonical))
    authorization = (
        f"{ALGORITHM} Credential={access_key_id}/{scope},"
        f" SignedHeaders={';'.join(signed)}, Signature={signature}"
    )
    return {
        "Authorization": authorization,
        "X-Amz-Date": amz_date,
        "x-amz-content-sha256": payload_sha256,
    }


def presign_url(
    method: str,
    url: str,
    access_key_id: str,
    secret: str,
    expires_s: int,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> str:
    """The URL with SigV4 query authentication, good for ``expires_s`` seconds (1 to 7 days)
    from ``now``; only ``host`` is signed and the payload is ``UNSIGNED-PAYLOAD``."""
    if not 1 <= expires_s <= MAX_EXPIRES_S:
        raise ValueError(f"a presigned URL lasts 1 to {MAX_EXPIRES_S} s, not {expires_s}")
    amz_date = (now or datetime.now(UTC)).strftime(AMZ_DATE_FORMAT)
    parts = urlsplit(url)
    scope = credential_scope(amz_date[:8], region)
    auth = (
        ("X-Amz-Algorithm", ALGORITHM),
        ("X-Amz-Credential", f"{access_key_id}/{scope}"),
        ("X-Amz-Date", amz_date),
        ("X-Amz-Expires", str(expires_s)),
        ("X-Amz-SignedHeaders", "host"),
    )
    encoded = "&".join(f"{name}={quote(value, safe='-_.~')}" for name, value in auth)
    query = f"{parts.query}&{encoded}" if parts.query else encoded
    canonical = canonical_request(
        method.upper(),
        canonical_uri(parts.path),
        canonical_query(query),
        f"host:{_host(parts)}\n",
        ["host"],
        UNSIGNED_PAYLOAD,
    )
    key = signing_key(access_key_id, secret, amz_date[:8], region)
    signature = signature_hex(key, string_to_sign(amz_date, scope, canonical))
    signed_query = f"{query}&X-Amz-Signature={signature}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, signed_query, parts.fragment))


def _host(parts: SplitResult) -> str:
    """The Host an HTTP client sends for the URL: the default port left out, as botocore."""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host
