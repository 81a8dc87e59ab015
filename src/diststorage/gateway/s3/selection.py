"""Which bytes a GetObject or HeadObject asks for: a ``Range`` header (``bytes=a-b``,
``bytes=a-``, ``bytes=-n``; the end clamped to the object, a start at or past its end 416), or
``?partNumber=N``, the Nth part of a multipart object (1 for any other), never both."""

from __future__ import annotations

from collections.abc import Mapping

from diststorage.core.errors import InvalidRequest
from diststorage.gateway.http.headers import parse_range_spec
from diststorage.gateway.objects.multipart import check_part_number, part_range
from diststorage.gateway.objects.operations import resolve_range
from diststorage.gateway.s3.object_responses import Selection
from diststorage.meta import ObjectLayout

PART_NUMBER = "partNumber"


def part_number_of(query: Mapping[str, str], headers: Mapping[str, str]) -> int | None:
    """``?partNumber``, checked; InvalidRequest for a malformed one, or one with a Range."""
    text = query.get(PART_NUMBER)
    if text is None:
        return None
    if not text.isdigit() or len(text) > 5:
        raise InvalidRequest(f"partNumber {text[:20]!r} is not a part number")
    if "Range" in headers:
        raise InvalidRequest("Cannot specify both Range header and partNumber query parameter")
    number = int(text)
    check_part_number(number)
    return number


def selection_of(
    layout: ObjectLayout, part_number: int | None, range_header: str | None
) -> Selection:
    """The bytes served of the object (``layout.parts`` are only needed for a part number);
    RangeNotSatisfiable or InvalidPartNumber for a selection outside it."""
    size = layout.info.size_bytes
    if part_number is not None:
        part = part_range(layout, part_number)
        if part.byte_range.length == 0:
            return Selection(None)  # an empty object: nothing for Content-Range to name
        return Selection(part.byte_range, part.part_count)
    return Selection(resolve_range(parse_range_spec(range_header), size))
