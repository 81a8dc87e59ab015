"""Headers every front end reads alike: the body's announced size and the Range asked for."""

from __future__ import annotations

import re

from diststorage.core.errors import LengthRequired, PayloadTooLarge
from diststorage.gateway.objects.operations import RangeSpec

# RFC 9110's DIGIT is ASCII: ``\d`` would take other scripts' digits too.
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# int() refuses more than 4300 digits; a position written with more digits than this is past
# every object (5 TiB at most) alike, so it stands as ``_FAR``.
_POSITION_DIGITS = 30
_FAR = 10**_POSITION_DIGITS


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


def parse_range_spec(header: str | None) -> RangeSpec | None:
    """The single byte range a Range header asks for, before the object's size is known.

    None means "the whole object": no header, or one this server ignores as RFC 9110 allows
    (several ranges, malformed syntax). Never raises: whether the range misses the object is
    only known against its size (``RangeSpec.resolve``).
    """
    if header is None:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if first and last and _order(last) < _order(first):
        return None
    return RangeSpec(_position(first) if first else None, _position(last) if last else None, header)


def _order(digits: str) -> tuple[int, str]:
    """Sorts digit strings of any length as the numbers they write."""
    significant = digits.lstrip("0")
    return len(significant), significant


def _position(digits: str) -> int:
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) <= _POSITION_DIGITS else _FAR
