"""What ListObjects (V1) and ListObjectsV2 ask and answer, short of the database and the XML:
the query parameters parsed into a typed ``ListRequest``, V2's continuation tokens, V1's
markers, and ``encoding-type=url``. Pure: no I/O, so the HTTP layer and its tests use it as is.

Hand-written, as no library parses S3's list parameters or makes its tokens; botocore, the
reference client, shows what they must decode to (the tests run its decoder on our output).

- **Where a page starts**: after the V2 continuation token's key, else after StartAfter (V2) or
  Marker (V1). The store's ``list_keys`` treats a start that is one of the listing's common
  prefixes as "past that prefix", so a page that ended on one continues behind it.
- **Continuation tokens** are opaque to clients: unpadded base64url of a version byte and the
  UTF-8 of the key or common prefix the page ended on. A client can craft one, but a crafted
  token says no more than a StartAfter would, so it needs no signature.
- **encoding-type=url** (``s3_url_encode``): botocore always asks for it and decodes with
  ``unquote_plus``, so ``+`` must go out as ``%2B`` and ``%`` as ``%25``. AWS writes a space as
  ``+`` (measured, brekkylab/backlot#178); we write ``%20``, which ``unquote_plus`` decodes
  alike, as do clients that percent-decode without the form rules (``+`` would reach those
  as a plus), and which ceph's s3-tests expect. ``/`` stays as it is, as on AWS.
  Encoded: Prefix, Delimiter, Marker, NextMarker, StartAfter, Key and CommonPrefixes/Prefix;
  never the tokens. ``<EncodingType>`` appears only when encoding.
- **Errors** are InvalidRequest (S3 answers these with ``InvalidArgument``), with AWS's
  messages where AWS has one.
"""

from __future__ import annotations

import base64
import binascii
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from diststorage.core.errors import InvalidRequest

MAX_KEYS = 1000
# AWS takes max-keys as a 32-bit signed integer; above the page size it only clamps.
_MAX_KEYS_ARGUMENT = 2**31 - 1
TOKEN_VERSION = 1
# A token holds one key (at most 1024 bytes, 1368 characters of base64) and its version byte.
MAX_TOKEN_CHARS = 2048
# Leading zeros, then at most the ten digits of 2**31 - 1: int() is never handed more than
# that (it refuses over 4300 digits).
_DIGITS = re.compile(r"0*([0-9]{1,10})")
_NEGATIVE = re.compile(r"-[0-9]+")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class ListVersion(enum.IntEnum):
    V1 = 1  # GET /bucket: Marker / NextMarker
    V2 = 2  # GET /bucket?list-type=2: StartAfter, continuation tokens, KeyCount


@dataclass(frozen=True, slots=True)
class ListRequest:
    """A ListObjects request, parsed. ``delimiter`` and ``prefix`` are "" when absent; the
    ``marker``, ``start_after`` and ``continuation_token`` fields are what the client sent
    (for the echo in the answer), and ``start`` is where the page starts."""

    version: ListVersion
    prefix: str = ""
    delimiter: str = ""
    max_keys: int = MAX_KEYS
    start: str = ""
    marker: str | None = None
    start_after: str | None = None
    continuation_token: str | None = None
    url_encoding: bool = False
    fetch_owner: bool = False

    @property
    def lists_owner(self) -> bool:
        """Whether each Contents entry carries an Owner: always in V1, on request in V2."""
        return self.version is ListVersion.V1 or self.fetch_owner

    def encode(self, text: str) -> str:
        """A Key or CommonPrefixes/Prefix as the answer carries it."""
        return s3_url_encode(text) if self.url_encoding else text


@dataclass(frozen=True, slots=True)
class ListResultHead:
    """The elements of a ListBucketResult besides Name, Contents and CommonPrefixes, encoded
    as the request asked; None leaves the element out."""

    prefix: str
    delimiter: str | None
    max_keys: int
    encoding_type: str | None
    is_truncated: bool
    marker: str | None = None  # V1: always, "" when none was sent
    next_marker: str | None = None  # V1: a truncated page listed with a delimiter
    start_after: str | None = None  # V2: when sent
    continuation_token: str | None = None  # V2: when sent, as sent
    next_continuation_token: str | None = None  # V2: a truncated page
    key_count: int | None = None  # V2: objects and common prefixes on the page


def s3_url_encode(text: str) -> str:
    """``text`` as S3 writes it under ``encoding-type=url``: percent-encoded UTF-8 with
    uppercase hex, letters, digits, ``-_.~`` and ``/`` as they are (space as ``%20``)."""
    return quote(text, safe="/")


def encode_continuation_token(start_after: str) -> str:
    """The opaque NextContinuationToken for a page that ended at ``start_after``."""
    payload = bytes([TOKEN_VERSION]) + start_after.encode()
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode("ascii")


def decode_continuation_token(token: str) -> str:
    """The key (or common prefix) a continuation token continues after. Raises
    InvalidRequest for anything ``encode_continuation_token`` did not make."""
    if not token or len(token) > MAX_TOKEN_CHARS or not _BASE64URL.fullmatch(token):
        raise _bad_token("not a token this server issued")
    try:
        payload = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _bad_token("not base64url") from exc
    if len(payload) < 2 or payload[0] != TOKEN_VERSION:
        raise _bad_token("unknown token version")
    try:
        start_after = payload[1:].decode()
    except UnicodeDecodeError as exc:
        raise _bad_token("not UTF-8") from exc
    if encode_continuation_token(start_after) != token:
        raise _bad_token("not in canonical form")
    return start_after


def _bad_token(why: str) -> InvalidRequest:
    return InvalidRequest(f"The continuation token provided is incorrect ({why})")


def parse_list_request(query: Mapping[str, str]) -> ListRequest:
    """The ListObjects or ListObjectsV2 request in a bucket GET's query parameters (V2 when
    ``list-type=2``). Parameters of the other version are ignored, as by S3. Raises
    InvalidRequest for a parameter out of its range."""
    version = _version(query.get("list-type"))
    prefix = _text(query, "prefix") or ""
    delimiter = _text(query, "delimiter") or ""
    max_keys = _max_keys(query.get("max-keys"))
    url_encoding = _url_encoding(query.get("encoding-type"))
    if version is ListVersion.V1:
        marker = _text(query, "marker")
        return ListRequest(
            version, prefix, delimiter, max_keys, marker or "", marker, url_encoding=url_encoding
        )
    token = query.get("continuation-token")
    start_after = _text(query, "start-after")
    return ListRequest(
        version,
        prefix,
        delimiter,
        max_keys,
        start=decode_continuation_token(token) if token is not None else start_after or "",
        start_after=start_after,
        continuation_token=token,
        url_encoding=url_encoding,
        fetch_owner=_flag("fetch-owner", query.get("fetch-owner")),
    )


def _version(value: str | None) -> ListVersion:
    if value is None:
        return ListVersion.V1
    if value == "2":
        return ListVersion.V2
    raise InvalidRequest(f"list-type must be 2 (ListObjectsV2) or absent, not {value!r}")


def _text(query: Mapping[str, str], name: str) -> str | None:
    value = query.get(name)
    if value is not None:
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise InvalidRequest(f"{name} is not valid UTF-8") from exc
    return value


def _max_keys(value: str | None) -> int:
    if value is None:
        return MAX_KEYS
    if _NEGATIVE.fullmatch(value):
        raise InvalidRequest(
            f"Argument maxKeys must be an integer between 0 and {_MAX_KEYS_ARGUMENT}"
        )
    digits = _DIGITS.fullmatch(value)
    if digits is None or int(digits[1]) > _MAX_KEYS_ARGUMENT:
        raise InvalidRequest("Provided max-keys not an integer or within integer range")
    return min(int(digits[1]), MAX_KEYS)


def _url_encoding(value: str | None) -> bool:
    if value is None:
        return False
    if value != "url":
        raise InvalidRequest(f"Invalid Encoding Method specified in Request: {value!r}")
    return True


def _flag(name: str, value: str | None) -> bool:
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise InvalidRequest(f"{name} must be true or false, not {value!r}")
    return lowered == "true"


def list_result_head(
    request: ListRequest, *, truncated: bool, next_start_after: str | None, key_count: int
) -> ListResultHead:
    """The answer's elements for a page of ``key_count`` entries; ``next_start_after`` is
    the store's (the page's last key or common prefix, when truncated)."""
    encode = request.encode
    v1 = request.version is ListVersion.V1
    resume = next_start_after if truncated else None
    # S3 names a NextMarker only for a listing with a delimiter; without one the client
    # continues from the last key it got.
    next_marker = resume if v1 and request.delimiter else None
    return ListResultHead(
        prefix=encode(request.prefix),
        delimiter=encode(request.delimiter) if request.delimiter else None,
        max_keys=request.max_keys,
        encoding_type="url" if request.url_encoding else None,
        is_truncated=truncated,
        marker=encode(request.marker or "") if v1 else None,
        next_marker=None if next_marker is None else encode(next_marker),
        start_after=None if request.start_after is None else encode(request.start_after),
        continuation_token=request.continuation_token,
        next_continuation_token=(
            None if v1 or resume is None else encode_continuation_token(resume)
        ),
        key_count=None if v1 else key_count,
    )
