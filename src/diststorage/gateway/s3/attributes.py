"""What an object keeps beside its bytes, from and back to S3 headers: ``x-amz-meta-*``
(names lowercased, without the prefix), Content-Type, and the representation headers
Content-Encoding, Content-Disposition, Content-Language, Cache-Control and Expires.

``aws-chunked`` is framing, not the object's encoding: it is stripped (possibly repeated) from
a stored Content-Encoding, which is left out when nothing else remains (S3.md §4).
"""

from __future__ import annotations

from collections.abc import Mapping

from diststorage.core.errors import MetadataTooLarge
from diststorage.meta import ObjectAttributes

META_PREFIX = "x-amz-meta-"
DEFAULT_CONTENT_TYPE = "binary/octet-stream"
REPRESENTATION_HEADERS = (
    "Content-Encoding",
    "Content-Disposition",
    "Content-Language",
    "Cache-Control",
    "Expires",
)
# AWS's limit on the user metadata of one object: names and values, in UTF-8 bytes.
MAX_USER_META_BYTES = 2048


def content_type_of(headers: Mapping[str, str]) -> str:
    return headers.get("Content-Type") or DEFAULT_CONTENT_TYPE


def attributes_from_headers(headers: Mapping[str, str]) -> ObjectAttributes:
    """The attributes a PutObject, CopyObject (REPLACE) or CreateMultipartUpload stores;
    MetadataTooLarge for user metadata over 2 KiB."""
    user_meta = tuple(
        (name.lower()[len(META_PREFIX) :], value)
        for name, value in headers.items()
        if name.lower().startswith(META_PREFIX)
    )
    size = sum(len(name.encode()) + len(value.encode()) for name, value in user_meta)
    if size > MAX_USER_META_BYTES:
        raise MetadataTooLarge(
            f"user metadata is {size} bytes; at most {MAX_USER_META_BYTES} are allowed"
        )
    kept: list[tuple[str, str]] = []
    for name in REPRESENTATION_HEADERS:
        value = headers.get(name)
        if name == "Content-Encoding" and value is not None:
            value = _without_aws_chunked(value)
        if value:
            kept.append((name, value))
    return ObjectAttributes(user_meta=user_meta, headers=tuple(kept))


def attribute_headers(attrs: ObjectAttributes) -> dict[str, str]:
    """The response headers that hand the attributes back."""
    headers = {f"{META_PREFIX}{name}": value for name, value in attrs.user_meta}
    headers.update(attrs.headers)
    return headers


def _without_aws_chunked(value: str) -> str:
    codings = [part.strip() for part in value.split(",")]
    return ", ".join(part for part in codings if part and part.lower() != "aws-chunked")
