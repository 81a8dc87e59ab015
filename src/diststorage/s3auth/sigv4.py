"""The S3 request verifier: SigV4 in the Authorization header or a presigned URL, and SigV2
presigned URLs (``sigv2.py``).

Hand-written because no PyPI package verifies S3 requests on the server side with streaming
payloads: botocore only signs (it is the oracle in the tests), and the small verifiers skip the
chunk signatures and trailers.

Two steps, so that a request is judged before its key is looked up:

1. ``parse_authentication`` reads the request: which key, what was signed (the canonical
   request, computed here), the payload mode, and whether the date is acceptable. It raises on
   malformed authentication and answers None for a request with none at all.
2. ``verify`` takes that key's secret and the gateway's region, and checks the signature.

Rules, after AWS and the S3 servers that are known to work with real clients:

- The canonical URI is the raw path as received. On a mismatch the path decoded and
  re-encoded as the SDKs encode keys is tried once (MinIO's ``EncodePath``): the key comes from
  the same decode, so the retry grants nothing.
- ``host`` must be signed, and every ``x-amz-*`` header present must be, else the holder of a
  presigned URL could add metadata or tagging to it.
- Header authentication needs X-Amz-Date (else Date) within 15 minutes of now, and the
  credential scope's date must be the request's. A presigned URL is good from its X-Amz-Date
  (15 minutes early at most) for X-Amz-Expires seconds, which may be up to 604800, with no
  15-minute cap.
- A credential scope naming another region is AuthorizationHeaderMalformed (or, presigned,
  AuthorizationQueryParametersError) naming the region expected, so that the SDKs re-sign.
- SigV4A (``AWS4-ECDSA-P256-SHA256``) is UnsupportedSignature (501); a SigV2 Authorization
  header is InvalidRequest, as AWS answers it where SigV4 is required.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from diststorage.core.errors import (
    AccessDenied,
    AuthError,
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    InvalidRequest,
    RequestExpired,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    UnsupportedSignature,
)
from diststorage.s3auth import sigv2
from diststorage.s3auth.canonical import (
    ALGORITHM,
    AMZ_DATE_FORMAT,
    SERVICE,
    TERMINATOR,
    UNSIGNED_PAYLOAD,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri,
    credential_scope,
    header_values,
    reencoded_uri,
    signature_hex,
    signing_key,
    string_to_sign,
)
from diststorage.s3auth.claims import AuthScheme, Claim, SignedRequest, Verified
from diststorage.s3auth.payload import ChunkSeed, PayloadMode, payload_mode
from diststorage.s3auth.query import QueryParams, query_params

__all__ = [
    "MAX_PRESIGNED_EXPIRES_S",
    "MAX_SKEW",
    "Claim",
    "PayloadMode",
    "SignedRequest",
    "Verified",
    "check_time",
    "parse_authentication",
    "verify",
]

MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGNED_EXPIRES_S = 7 * 24 * 3600
ECDSA_ALGORITHM = "AWS4-ECDSA-P256-SHA256"
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided."
    " Check your key and signing method."
)
_SIGNATURE = re.compile(r"[0-9a-f]{64}")
_AMZ_DATE = re.compile(r"[0-9]{8}T[0-9]{6}Z")
_DIGITS = re.compile(r"[0-9]{1,12}")
_DATE = re.compile(r"[0-9]{8}")
_HEADER_FIELDS = frozenset({"Credential", "SignedHeaders", "Signature"})
_PRESIGN_PARAMS = (
    "X-Amz-Algorithm",
    "X-Amz-Credential",
    "X-Amz-Date",
    "X-Amz-Expires",
    "X-Amz-SignedHeaders",
    "X-Amz-Signature",
)


def parse_authentication(
    request: SignedRequest, now: datetime, absent_payload_hash: str | None = None
) -> Claim | None:
    """What the request claims; None when it carries no authentication at all.

    ``absent_payload_hash`` is what a header-signed request without x-amz-content-sha256 is
    taken to have signed as its payload: None refuses such a request, as AWS does (the S3
    API); the native API passes the empty body's sha256, which curl before 8.1 signs
    (``--aws-sigv4``), and the body is then not covered, as with UNSIGNED-PAYLOAD.

    Raises AuthorizationHeaderMalformed / AuthorizationQueryParametersError for malformed
    authentication, UnsupportedSignature for SigV4A, InvalidRequest for a SigV2 header, more
    than one mechanism, or a missing x-amz-content-sha256, AccessDenied for unsigned
    ``x-amz-*`` headers, and RequestTimeTooSkewed / RequestExpired for a date out of bounds.
    """
    headers = header_values(request.headers)
    params = query_params(request.raw_query)
    authorization = headers.get("authorization")
    presigned_v4 = any(name in params for name in ("X-Amz-Signature", "X-Amz-Credential"))
    presigned_v2 = "Signature" in params or "AWSAccessKeyId" in params
    if sum((authorization is not None, presigned_v4, presigned_v2)) > 1:
        raise InvalidRequest("only one authentication mechanism is allowed per request")
    if authorization is not None:
        if len(authorization) > 1:
            raise AuthorizationHeaderMalformed("more than one Authorization header")
        claim = _header_claim(request, headers, authorization[0], absent_payload_hash)
    elif presigned_v4:
        claim = _presigned_claim(request, headers, params)
    elif presigned_v2:
        claim = sigv2.presigned_claim(request, headers, params)
    else:
        return None
    check_time(claim, now)
    return claim


def verify(claim: Claim, secret: str, region: str, now: datetime) -> Verified:
    """Checks the claim's signature with the key's secret, for this gateway's region.

    Raises SignatureDoesNotMatch (with the StringToSign and CanonicalRequest as attributes),
    AuthorizationHeaderMalformed / AuthorizationQueryParametersError for another region, and
    the time errors of ``check_time``.
    """
    check_time(claim, now)
    if claim.scheme is AuthScheme.PRESIGNED_V2:
        sigv2.check_signature(claim, secret)
        return Verified(claim.access_key_id, claim.payload, None, presigned=True)
    if claim.region != region:
        malformed = (
            AuthorizationHeaderMalformed
            if claim.scheme is AuthScheme.HEADER
            else AuthorizationQueryParametersError
        )
        raise malformed(
            f"the authorization header is malformed; the region {claim.region!r} is wrong;"
            f" expecting {region!r}",
            region=region,
        )
    key = signing_key(claim.access_key_id, secret, claim.scope_date, region)
    scope = credential_scope(claim.scope_date, region)
    strings = [string_to_sign(claim.amz_date, scope, canonical) for canonical in claim.canonical]
    if not any(hmac.compare_digest(signature_hex(key, s), claim.signature) for s in strings):
        raise SignatureDoesNotMatch(
            SIGNATURE_MISMATCH, strings[0], claim.canonical[0], claim.access_key_id
        )
    seed = None
    if claim.payload.signs_chunks:
        seed = ChunkSeed(key, scope, claim.amz_date, claim.signature)
    presigned = claim.scheme is AuthScheme.PRESIGNED
    return Verified(claim.access_key_id, claim.payload, claim.content_sha256, presigned, seed)


def check_time(claim: Claim, now: datetime) -> None:
    """Raises RequestTimeTooSkewed, AccessDenied (a presigned URL not valid yet), RequestExpired
    or AuthorizationQueryParametersError (a SigV2 URL good for more than 7 days from now)."""
    if claim.scheme is AuthScheme.PRESIGNED_V2:
        assert claim.expires_at is not None
        if now > claim.expires_at:
            raise RequestExpired("Request has expired")
        if claim.expires_at - now > timedelta(seconds=MAX_PRESIGNED_EXPIRES_S):
            raise AuthorizationQueryParametersError(
                f"Expires must be less than a week ({MAX_PRESIGNED_EXPIRES_S} s) from now"
            )
        return
    assert claim.signed_at is not None
    if claim.scheme is AuthScheme.HEADER:
        if abs(now - claim.signed_at) > MAX_SKEW:
            raise RequestTimeTooSkewed(
                f"the request time {claim.amz_date} and the server time"
                f" {now.strftime(AMZ_DATE_FORMAT)} differ by more than 15 minutes"
            )
        return
    assert claim.expires_at is not None
    if claim.signed_at - now > MAX_SKEW:
        raise AccessDenied("Request is not valid yet")
    if now > claim.expires_at:
        raise RequestExpired("Request has expired")


def _header_claim(
    request: SignedRequest,
    headers: Mapping[str, list[str]],
    authorization: str,
    absent_payload_hash: str | None,
) -> Claim:
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme == ECDSA_ALGORITHM:
        raise UnsupportedSignature("SigV4A (AWS4-ECDSA-P256-SHA256) is not supported")
    if scheme == "AWS":
        raise InvalidRequest(
            "The authorization mechanism you have provided is not supported."
            " Please use AWS4-HMAC-SHA256."
        )
    if scheme != ALGORITHM:
        raise AuthorizationHeaderMalformed(f"unsupported Authorization type {scheme[:40]!r}")
    fields = _authorization_fields(rest)
    key_id, date, region = _credential(fields["Credential"], AuthorizationHeaderMalformed)
    signed = _signed_headers(fields["SignedHeaders"], AuthorizationHeaderMalformed)
    signature = _signature(fields["Signature"], AuthorizationHeaderMalformed)
    date_header, amz_date, signed_at = _request_date(headers)
    if date != amz_date[:8]:
        raise AuthorizationHeaderMalformed(
            f"the credential date {date} is not the request's date {amz_date[:8]}"
        )
    if date_header not in signed:
        raise AuthorizationHeaderMalformed(f"the {date_header} header must be signed")
    payload_line = _single(headers, "x-amz-content-sha256")
    if payload_line is not None:
        mode, sha256 = payload_mode(payload_line)
    elif absent_payload_hash is not None:
        mode, sha256, payload_line = PayloadMode.UNSIGNED, None, absent_payload_hash
    else:
        raise InvalidRequest("Missing required header for this request: x-amz-content-sha256")
    _require_coverage(headers, signed)
    return Claim(
        access_key_id=key_id,
        scheme=AuthScheme.HEADER,
        signature=signature,
        payload=mode,
        content_sha256=sha256,
        canonical=_canonical_requests(request, headers, signed, payload_line, ()),
        signed_at=signed_at,
        region=region,
        scope_date=date,
        amz_date=amz_date,
    )


def _presigned_claim(
    request: SignedRequest, headers: Mapping[str, list[str]], params: QueryParams
) -> Claim:
    values = {
        name: params.single(name, AuthorizationQueryParametersError) for name in _PRESIGN_PARAMS
    }
    algorithm = values["X-Amz-Algorithm"]
    if algorithm == ECDSA_ALGORITHM:
        raise UnsupportedSignature("SigV4A (AWS4-ECDSA-P256-SHA256) is not supported")
    if algorithm != ALGORITHM:
        raise AuthorizationQueryParametersError(f"X-Amz-Algorithm must be {ALGORITHM}")
    failure = AuthorizationQueryParametersError
    key_id, date, region = _credential(values["X-Amz-Credential"], failure)
    signed = _signed_headers(values["X-Amz-SignedHeaders"], failure)
    signature = _signature(values["X-Amz-Signature"], failure)
    amz_date = values["X-Amz-Date"]
    signed_at = _amz_date(amz_date, failure)
    if date != amz_date[:8]:
        raise failure(f"the credential date {date} is not X-Amz-Date's {amz_date[:8]}")
    expires_s = _expires(values["X-Amz-Expires"])
    try:
        expires_at = signed_at + timedelta(seconds=expires_s)
    except OverflowError:
        raise failure("X-Amz-Date plus X-Amz-Expires is past the year 9999") from None
    payload_line = params.first_named_like("x-amz-content-sha256")
    if payload_line is None:
        payload_line = _single(headers, "x-amz-content-sha256") or UNSIGNED_PAYLOAD
    mode, sha256 = payload_mode(payload_line)
    if mode.signs_chunks:
        raise failure("a presigned URL cannot carry a signed streaming payload")
    _require_coverage(headers, signed)
    return Claim(
        access_key_id=key_id,
        scheme=AuthScheme.PRESIGNED,
        signature=signature,
        payload=mode,
        content_sha256=sha256,
        canonical=_canonical_requests(request, headers, signed, payload_line, ("X-Amz-Signature",)),
        signed_at=signed_at,
        expires_at=expires_at,
        region=region,
        scope_date=date,
        amz_date=amz_date,
    )


def _canonical_requests(
    request: SignedRequest,
    headers: Mapping[str, list[str]],
    signed: Sequence[str],
    payload_line: str,
    leave_out: Sequence[str],
) -> tuple[str, ...]:
    query = canonical_query(request.raw_query, leave_out)
    block = canonical_headers(headers, signed)
    uris = [canonical_uri(request.raw_path)]
    retry = reencoded_uri(request.raw_path)
    if retry != uris[0]:
        uris.append(retry)
    return tuple(
        canonical_request(request.method, uri, query, block, signed, payload_line) for uri in uris
    )


def _authorization_fields(rest: str) -> dict[str, str]:
    """``Credential=…, SignedHeaders=…, Signature=…``, the spaces after commas optional."""
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, value = part.strip().partition("=")
        if not name and not equals:
            continue
        if not equals or name not in _HEADER_FIELDS or name in fields:
            raise AuthorizationHeaderMalformed(f"unexpected Authorization field {name[:40]!r}")
        fields[name] = value.strip()
    missing = sorted(_HEADER_FIELDS - fields.keys())
    if missing:
        raise AuthorizationHeaderMalformed(f"the Authorization header lacks {', '.join(missing)}")
    return fields


def _credential(value: str, failure: type[AuthError]) -> tuple[str, str, str]:
    """(access key id, yyyymmdd, region) of ``KEY/yyyymmdd/region/s3/aws4_request``."""
    parts = value.split("/")
    if len(parts) != 5 or not parts[0] or not parts[2]:
        raise failure(f"the Credential {value[:120]!r} is malformed")
    key_id, date, region, service, terminator = parts
    if not _DATE.fullmatch(date):
        raise failure(f"the Credential's date {date[:20]!r} is not yyyymmdd")
    if service != SERVICE or terminator != TERMINATOR:
        raise failure(f"the Credential must end in /{SERVICE}/{TERMINATOR}")
    return key_id, date, region


def _signed_headers(value: str, failure: type[AuthError]) -> list[str]:
    names = value.split(";")
    if any(not n or n != n.lower() or n != n.strip() for n in names) or len(set(names)) < len(
        names
    ):
        raise failure(f"SignedHeaders {value[:200]!r} is malformed")
    if "host" not in names:
        raise failure("the host header must be signed")
    return names


def _signature(value: str, failure: type[AuthError]) -> str:
    if not _SIGNATURE.fullmatch(value.lower()):
        raise failure("the Signature must be 64 hex digits")
    return value.lower()


def _request_date(headers: Mapping[str, list[str]]) -> tuple[str, str, datetime]:
    """(header used, yyyymmddThhmmssZ, the time) from X-Amz-Date, else Date."""
    amz = _single(headers, "x-amz-date")
    if amz is not None:
        return "x-amz-date", amz, _amz_date(amz, AuthorizationHeaderMalformed)
    date = _single(headers, "date")
    if date is None:
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
    try:
        when = parsedate_to_datetime(date)
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (TypeError, ValueError, OverflowError):  # Overflow: 31 Dec 9999 -0100 is in 10000
        raise AccessDenied(f"the Date header {date[:60]!r} is not an HTTP date") from None
    return "date", when.strftime(AMZ_DATE_FORMAT), when


def _amz_date(value: str, failure: type[AuthError]) -> datetime:
    try:
        if not _AMZ_DATE.fullmatch(value):
            raise ValueError(value)
        return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        raise failure(f"X-Amz-Date {value[:40]!r} is not yyyymmddThhmmssZ") from None


def _expires(value: str) -> int:
    if not _DIGITS.fullmatch(value):
        raise AuthorizationQueryParametersError("X-Amz-Expires must be a number of seconds")
    expires_s = int(value)
    if expires_s > MAX_PRESIGNED_EXPIRES_S:
        raise AuthorizationQueryParametersError(
            f"X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES_S}"
        )
    return expires_s


def _single(headers: Mapping[str, list[str]], name: str) -> str | None:
    values = headers.get(name)
    if values is None:
        return None
    if len(values) > 1:
        raise InvalidRequest(f"more than one {name} header")
    return values[0]


def _require_coverage(headers: Mapping[str, list[str]], signed: Sequence[str]) -> None:
    unsigned = sorted(n for n in headers if n.startswith("x-amz-") and n not in signed)
    if unsigned:
        raise AccessDenied(
            "There were headers present in the request which were not signed: "
            + ", ".join(unsigned)
        )
