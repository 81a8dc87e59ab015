"""Parse, then handle: an HTTP request becomes a typed operation before any handler runs.

Every validation error comes out of here as a core error with a precise message.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping

from diststorage.core.errors import (
    InvalidKey,
    InvalidRequest,
    MethodNotAllowed,
)
from diststorage.core.policy import RedundancyPolicy, parse_policy
from diststorage.gateway.http.headers import parse_declared_size, parse_range_spec
from diststorage.gateway.objects.operations import (
    ByteRange,
    DeleteOperation,
    GetOperation,
    HeadOperation,
    ListOperation,
    ObjectOperation,
    PutOperation,
    resolve_range,
)
from diststorage.meta import DEFAULT_NAMESPACE, MAX_LIST_LIMIT

MAX_KEY_BYTES = 1024
SYSTEM_PREFIX = "_/"
# The web dashboard (``gateway.dashboard``): under the system prefix, but with its own login.
UI_PATH = "/_/ui"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
OBJECT_METHODS = frozenset({"GET", "HEAD", "PUT", "POST", "DELETE"})
READ_METHODS = frozenset({"GET", "HEAD"})
# A listing limit: leading zeros, then a few digits (more would be over any limit anyway).
_LIMIT = re.compile(r"0*([0-9]{1,9})")

__all__ = [
    "DEFAULT_CONTENT_TYPE",
    "SYSTEM_PREFIX",
    "UI_PATH",
    "ByteRange",
    "decode_key",
    "is_system_path",
    "is_ui_path",
    "parse_declared_size",
    "parse_key",
    "parse_listing",
    "parse_object_request",
    "parse_put",
    "parse_range",
    "parse_range_spec",
    "parse_redundancy",
]


def is_system_path(raw_path: str) -> bool:
    """Whether the path is a system route (``/_/...``) rather than an object request."""
    return raw_path.split("?", 1)[0].startswith("/" + SYSTEM_PREFIX)


def is_ui_path(raw_path: str) -> bool:
    """Whether the path is the dashboard's (``/_/ui`` and below)."""
    path = raw_path.split("?", 1)[0]
    return path == UI_PATH or path.startswith(UI_PATH + "/")


def parse_object_request(
    method: str,
    raw_path: str,
    query: Mapping[str, str],
    headers: Mapping[str, str],
    content_length: int | None,
    max_object_bytes: int,
) -> ObjectOperation:
    """The operation a request on ``/`` (a listing) or ``/{key}`` asks for.

    Raises MethodNotAllowed, InvalidKey, InvalidRequest, LengthRequired, PayloadTooLarge or
    InvalidPolicy, in the order a request is read: method, path, then headers.
    """
    if raw_path.split("?", 1)[0] == "/":
        _allow(method, READ_METHODS)
        return parse_listing(query, MAX_LIST_LIMIT)
    _allow(method, OBJECT_METHODS)
    key = parse_key(raw_path)
    if method in ("PUT", "POST"):
        return parse_put(method, key, headers, content_length, max_object_bytes)
    if method == "DELETE":
        return DeleteOperation(DEFAULT_NAMESPACE, key)
    spec = parse_range_spec(headers.get("Range"))
    if method == "HEAD":
        return HeadOperation(DEFAULT_NAMESPACE, key, spec)
    return GetOperation(DEFAULT_NAMESPACE, key, spec)


def _allow(method: str, methods: frozenset[str]) -> None:
    if method not in methods:
        raise MethodNotAllowed(f"{method} is not allowed here")


def parse_put(
    method: str,
    key: str,
    headers: Mapping[str, str],
    content_length: int | None,
    max_object_bytes: int,
) -> PutOperation:
    """A PUT (create or replace) or POST (create only) of a body under ``key``."""
    declared = parse_declared_size(
        content_length, headers.get("Transfer-Encoding"), max_object_bytes
    )
    return PutOperation(
        namespace=DEFAULT_NAMESPACE,
        key=key,
        content_type=headers.get("Content-Type") or DEFAULT_CONTENT_TYPE,
        requested_policy=parse_redundancy(headers.get("X-Redundancy")),
        declared_size=declared,
        replace=method == "PUT",
    )


def parse_key(raw_path: str) -> str:
    """The object key of a raw request path: percent-decoded, UTF-8, 1–1024 bytes."""
    key = decode_key(raw_path.split("?", 1)[0].removeprefix("/"))
    if key.startswith(SYSTEM_PREFIX):
        raise InvalidKey(f"keys under {SYSTEM_PREFIX!r} are reserved for system routes")
    return key


def decode_key(encoded: str) -> str:
    """A key from its percent-encoded form: UTF-8, 1–1024 bytes; raises InvalidKey."""
    try:
        key = urllib.parse.unquote(encoded, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidKey("the key is not valid UTF-8") from exc
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise InvalidKey("the key is not valid UTF-8") from exc
    if size == 0:
        raise InvalidKey("the key is empty")
    if size > MAX_KEY_BYTES:
        raise InvalidKey(f"the key is {size} bytes; at most {MAX_KEY_BYTES} are allowed")
    return key


def parse_redundancy(header: str | None) -> RedundancyPolicy | None:
    """The policy an X-Redundancy header asks for; None leaves the choice to the gateway."""
    return None if header is None else parse_policy(header)


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range asked for, resolved against the object size.

    None means "the whole object" (see ``parse_range_spec``). Raises RangeNotSatisfiable for a
    range that misses.
    """
    return resolve_range(parse_range_spec(header), size)


def parse_listing(query: Mapping[str, str], max_limit: int) -> ListOperation:
    limit_text = query.get("limit", str(max_limit))
    # ASCII digits only (str.isdigit() takes "²", which int() refuses), and never more of
    # them than int() takes (4300).
    digits = _LIMIT.fullmatch(limit_text)
    if digits is None or not 1 <= int(digits[1]) <= max_limit:
        raise InvalidRequest(f"limit must be a whole number from 1 to {max_limit}")
    return ListOperation(
        DEFAULT_NAMESPACE, query.get("prefix", ""), query.get("after", ""), int(digits[1])
    )
