"""Parse, then handle: an HTTP request becomes a typed operation before any handler runs.

Every validation error comes out of here as a core error with a precise message.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from diststorage.core.errors import (
    InvalidKey,
    InvalidRequest,
    LengthRequired,
    PayloadTooLarge,
    RangeNotSatisfiable,
)
from diststorage.core.policy import RedundancyPolicy, parse_policy, policy_for_size

MAX_KEY_BYTES = 1024
SYSTEM_PREFIX = "_/"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def parse_key(raw_path: str) -> str:
    """The object key of a raw request path: percent-decoded, UTF-8, 1–1024 bytes."""
    encoded = raw_path.split("?", 1)[0].removeprefix("/")
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
    if key.startswith(SYSTEM_PREFIX):
        raise InvalidKey(f"keys under {SYSTEM_PREFIX!r} are reserved for system routes")
    return key


def parse_declared_size(
    content_length: int | None, transfer_encoding: str | None, max_object_bytes: int
) -> int | None:
    """The announced body size, None for a chunked body of unknown size."""
    chunked = transfer_encoding is not None and "chunked" in transfer_encoding.lower()
    if content_length is None:
        if not chunked:
            raise LengthRequired("send Content-Length or Transfer-Encoding: chunked")
        return None
    if content_length > max_object_bytes:
        raise PayloadTooLarge(
            f"{content_length} bytes is more than the {max_object_bytes}-byte object limit"
        )
    return content_length


def parse_redundancy(
    header: str | None, default: RedundancyPolicy, size_bytes: int | None, small_object_bytes: int
) -> RedundancyPolicy:
    """The header's policy, exactly as asked; without one, the default fitted to the size."""
    if header is not None:
        return parse_policy(header)
    return policy_for_size(default, size_bytes, small_object_bytes)


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range asked for, resolved against the object size.

    None means "the whole object": no header, or one this server ignores as RFC 9110 allows
    (several ranges, malformed syntax). Raises RangeNotSatisfiable for a range that misses.
    """
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable(f"range {header} selects no bytes", size)
        return ByteRange(max(size - suffix, 0), size)
    start = int(first)
    end = size if not last else int(last) + 1
    if last and end <= start:
        return None
    if start >= size:
        raise RangeNotSatisfiable(f"range {header} starts past the {size}-byte object", size)
    return ByteRange(start, min(end, size))


@dataclass(frozen=True, slots=True)
class ListRequest:
    prefix: str
    after: str
    limit: int


def parse_listing(query: dict[str, str], max_limit: int) -> ListRequest:
    limit_text = query.get("limit", str(max_limit))
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= max_limit:
        raise InvalidRequest(f"limit must be a whole number from 1 to {max_limit}")
    return ListRequest(query.get("prefix", ""), query.get("after", ""), int(limit_text))
