"""The headers a GetObject or HeadObject answers: the object's own (ETag, Last-Modified,
Content-Type, its stored representation headers and ``x-amz-meta-*``), the range or part
served, the ``response-*`` overrides of the query, and the stored checksum.

The full-object checksum goes out only under ``x-amz-checksum-mode: ENABLED`` and only on a
200: botocore validates whatever checksum comes back, so one on a 206 would fail every ranged
download (S3.md pitfall 4).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import format_datetime

from diststorage.gateway.objects import ByteRange
from diststorage.gateway.s3.attributes import attribute_headers
from diststorage.gateway.s3.checksum_headers import checksum_headers, checksum_mode_enabled
from diststorage.gateway.s3.xml import quoted
from diststorage.meta import ObjectInfo

# Query parameter → the response header it sets (GetObject's Response* parameters).
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
    "response-content-language": "Content-Language",
    "response-cache-control": "Cache-Control",
    "response-expires": "Expires",
}
PARTS_COUNT_HEADER = "x-amz-mp-parts-count"


@dataclass(frozen=True, slots=True)
class Selection:
    """What of the object a read serves: all of it (``byte_range`` None, a 200) or a range
    (a 206); ``part_count`` is the object's parts, for a ``?partNumber`` read of a multipart
    object (0 otherwise)."""

    byte_range: ByteRange | None
    part_count: int = 0

    def bounds(self, size: int) -> tuple[int, int]:
        if self.byte_range is None:
            return 0, size
        return self.byte_range.start, self.byte_range.end

    @property
    def status(self) -> int:
        return 200 if self.byte_range is None else 206


def validator_headers(info: ObjectInfo) -> dict[str, str]:
    """What identifies the version: all a 304 carries."""
    return {
        "ETag": quoted(info.etag),
        "Last-Modified": format_datetime(info.created_at, usegmt=True),
    }


def read_headers(
    info: ObjectInfo,
    selection: Selection,
    request_headers: Mapping[str, str],
    query: Mapping[str, str],
) -> dict[str, str]:
    headers = {
        **validator_headers(info),
        "Content-Type": info.content_type,
        "Accept-Ranges": "bytes",
        **attribute_headers(info.attrs),
    }
    byte_range = selection.byte_range
    if byte_range is not None:
        last = byte_range.end - 1
        headers["Content-Range"] = f"bytes {byte_range.start}-{last}/{info.size_bytes}"
        if selection.part_count:
            headers[PARTS_COUNT_HEADER] = str(selection.part_count)
    elif checksum_mode_enabled(request_headers):
        headers.update(checksum_headers(info.checksum))
    for parameter, header in RESPONSE_OVERRIDES.items():
        value = query.get(parameter)
        if value is not None:
            headers[header] = value
    return headers
