"""SigV4 canonicalisation and key derivation, shared by the verifier and our own signer.

The verifier canonicalises what arrived, byte for byte; the signer what it is about to send.
Both sides must agree with every other SigV4 implementation (botocore is the oracle in the
tests), so each rule here is the spec's, with the choices S3 made:

- the URI is the path exactly as sent, never normalised and never encoded twice (S3's rule,
  unlike the other AWS services');
- the query's names and values are decoded (``+`` as a space) and re-encoded with only
  ``A-Z a-z 0-9 - _ . ~`` left bare, then sorted by name, then value;
- header values are trimmed, runs of spaces and tabs become one space, and repeated headers
  are joined by ``,`` in the order they came;
- strings are signed as their wire bytes: aiohttp hands over text decoded as UTF-8 with
  ``surrogateescape``, which ``wire_bytes`` undoes.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from urllib.parse import quote, unquote_to_bytes

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "s3"
TERMINATOR = "aws4_request"
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# Bytes a query name or value keeps unencoded (RFC 3986 unreserved).
_QUERY_SAFE = "-_.~"
_RUNS_OF_BLANKS = re.compile(r"[ \t]+")
# Signing keys for this many (key, date, region) at once: one a day per active key.
SIGNING_KEY_CACHE_ENTRIES = 1024


def wire_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def canonical_uri(raw_path: str) -> str:
    return raw_path or "/"


def reencoded_uri(raw_path: str) -> str:
    """The path decoded once and encoded as AWS SDKs encode a key: the one retry the verifier
    allows, for clients and proxies that leave ``!'()*`` and the like unencoded."""
    return quote(unquote_to_bytes(wire_bytes(canonical_uri(raw_path))), safe="/~")


def _form_decoded(text: str) -> bytes:
    return unquote_to_bytes(wire_bytes(text).replace(b"+", b" "))


def query_pairs(raw_query: str) -> list[tuple[bytes, bytes]]:
    """The query's (name, value) pairs, decoded, in their order; ``?uploads`` gives a value
    of b"", as ``?uploads=`` does."""
    pairs = []
    for part in raw_query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((_form_decoded(name), _form_decoded(value)))
    return pairs


def canonical_query(raw_query: str, leave_out: Collection[str] = ()) -> str:
    """The canonical query string of a raw query (without ``?``), less the parameters named
    in ``leave_out`` (a presigned URL's ``X-Amz-Signature``)."""
    left_out = {wire_bytes(name) for name in leave_out}
    encoded = sorted(
        (quote(name, safe=_QUERY_SAFE), quote(value, safe=_QUERY_SAFE))
        for name, value in query_pairs(raw_query)
        if name not in left_out
    )
    return "&".join(f"{name}={value}" for name, value in encoded)


def header_values(headers: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """Every header's values by lowercased name, repeated ones in the order they came."""
    values: dict[str, list[str]] = {}
    for name, value in headers:
        values.setdefault(name.lower(), []).append(value)
    return values


def trimall(value: str) -> str:
    return _RUNS_OF_BLANKS.sub(" ", value).strip(" \t")


def canonical_headers(values: Mapping[str, Sequence[str]], signed: Sequence[str]) -> str:
    """``name:value\\n`` for each signed header, in the order signed; a signed header the
    request lacks counts as empty (and so fails unless it was signed empty)."""
    return "".join(
        f"{name}:{','.join(trimall(v) for v in values.get(name, ()))}\n" for name in signed
    )


def canonical_request(
    method: str, uri: str, query: str, headers_block: str, signed: Sequence[str], payload: str
) -> str:
    return "\n".join((method, uri, query, headers_block, ";".join(signed), payload))


def credential_scope(date: str, region: str) -> str:
    return f"{date}/{region}/{SERVICE}/{TERMINATOR}"


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    digest = hashlib.sha256(wire_bytes(canonical)).hexdigest()
    return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"


def hmac_sha256(key: bytes, message: str) -> bytes:
    return hmac.new(key, wire_bytes(message), hashlib.sha256).digest()


def signature_hex(signing_key: bytes, message: str) -> str:
    return hmac_sha256(signing_key, message).hex()


@functools.lru_cache(maxsize=SIGNING_KEY_CACHE_ENTRIES)
def signing_key(access_key_id: str, secret: str, date: str, region: str) -> bytes:
    """``HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), "s3"), "aws4_request")``.

    Cached by key id *and* secret, so that a key whose secret was replaced never signs with
    the old one; the cache is bounded and thread-safe (``functools.lru_cache``).
    """
    del access_key_id  # part of the cache key only
    key = hmac_sha256(("AWS4" + secret).encode("utf-8"), date)
    for part in (region, SERVICE, TERMINATOR):
        key = hmac_sha256(key, part)
    return key
