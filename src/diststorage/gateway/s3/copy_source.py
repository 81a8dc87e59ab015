"""``x-amz-copy-source``: the object a CopyObject or UploadPartCopy reads, as
``[/]BUCKET/KEY[?versionId=V]`` percent-encoded (S3.md pitfall 17: decoded once, with or
without the leading slash, unicode included). Only ``versionId=null`` is accepted: buckets are
unversioned."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from diststorage.core.errors import InvalidRequest, NotImplementedFeature
from diststorage.gateway.s3.addressing import check_key

COPY_SOURCE_HEADER = "x-amz-copy-source"


@dataclass(frozen=True, slots=True)
class CopySource:
    bucket: str
    key: str


def parse_copy_source(header: str) -> CopySource:
    text, _, version = header.partition("?")
    if version and version != "versionId=null":
        raise NotImplementedFeature("buckets are unversioned: copy sources take no versionId")
    try:
        decoded = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("x-amz-copy-source is not percent-encoded UTF-8") from None
    bucket, _, key = decoded.removeprefix("/").partition("/")
    if not bucket or not key:
        raise InvalidRequest("x-amz-copy-source must name a bucket and a key: BUCKET/KEY")
    return CopySource(bucket, check_key(key))
