"""What ListParts and ListMultipartUploads ask (their query parameters, parsed) and answer
(their XML). Pure, like ``listing_codec``: no I/O.

Pages are at most 1000 entries, as on AWS; a larger ``max-parts`` or ``max-uploads`` only
clamps. ``upload-id-marker`` means something only beside a ``key-marker`` (AWS ignores it
alone). Under ``encoding-type=url`` the keys, prefixes, delimiter and key markers go out
percent-encoded (``listing_codec.s3_url_encode``); upload ids never need it.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass

from diststorage.core.errors import InvalidRequest
from diststorage.gateway.s3.listing_codec import s3_url_encode
from diststorage.gateway.s3.multipart_xml import add_checksum
from diststorage.gateway.s3.xml import child, document, quoted, timestamp
from diststorage.meta import PartsPage, UploadInfo, UploadsPage

MAX_PAGE = 1000
STORAGE_CLASS = "STANDARD"
_INTEGER = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class PartsRequest:
    part_number_marker: int
    max_parts: int


@dataclass(frozen=True, slots=True)
class UploadsRequest:
    prefix: str
    delimiter: str
    key_marker: str
    upload_id_marker: str
    max_uploads: int
    url_encoding: bool

    def encode(self, text: str) -> str:
        return s3_url_encode(text) if self.url_encoding else text


def _integer(query: Mapping[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not _INTEGER.fullmatch(value.strip()) or int(value) > 2**31 - 1:
        raise InvalidRequest(f"{name} must be an integer between 0 and 2147483647")
    return int(value)


def _page_size(query: Mapping[str, str], name: str) -> int:
    # The store's pages hold at least one entry; 0 asks for the smallest page.
    return max(1, min(_integer(query, name, MAX_PAGE), MAX_PAGE))


def parse_parts_request(query: Mapping[str, str]) -> PartsRequest:
    return PartsRequest(_integer(query, "part-number-marker", 0), _page_size(query, "max-parts"))


def parse_uploads_request(query: Mapping[str, str]) -> UploadsRequest:
    encoding = query.get("encoding-type")
    if encoding is not None and encoding != "url":
        raise InvalidRequest(f"Invalid Encoding Method specified in Request: {encoding[:40]!r}")
    key_marker = query.get("key-marker", "")
    return UploadsRequest(
        prefix=query.get("prefix", ""),
        delimiter=query.get("delimiter", ""),
        key_marker=key_marker,
        upload_id_marker=query.get("upload-id-marker", "") if key_marker else "",
        max_uploads=_page_size(query, "max-uploads"),
        url_encoding=encoding == "url",
    )


def _who(parent: ET.Element, tag: str, key_id: str | None) -> None:
    """An Initiator or Owner: the access key that created the upload."""
    element = child(parent, tag)
    child(element, "ID", key_id or "")
    child(element, "DisplayName", key_id or "")


def _flag(value: bool) -> str:
    return "true" if value else "false"


def parts_result(bucket: str, request: PartsRequest, page: PartsPage) -> ET.Element:
    upload = page.upload
    root = document("ListPartsResult")
    child(root, "Bucket", bucket)
    child(root, "Key", upload.key)
    child(root, "UploadId", upload.upload_id)
    _who(root, "Initiator", upload.initiator_key)
    _who(root, "Owner", upload.initiator_key)
    child(root, "StorageClass", STORAGE_CLASS)
    child(root, "PartNumberMarker", request.part_number_marker)
    last = page.parts[-1].part_number if page.parts else request.part_number_marker
    child(root, "NextPartNumberMarker", page.next_part_number_marker or last)
    child(root, "MaxParts", request.max_parts)
    child(root, "IsTruncated", _flag(page.truncated))
    for part in page.parts:
        element = child(root, "Part")
        child(element, "PartNumber", part.part_number)
        child(element, "LastModified", timestamp(part.uploaded_at))
        child(element, "ETag", quoted(part.etag))
        child(element, "Size", part.size_bytes)
        add_checksum(element, part.checksum)
    _upload_checksum(root, upload)
    return root


def _upload_checksum(parent: ET.Element, upload: UploadInfo) -> None:
    if upload.checksum_algorithm is not None:
        child(parent, "ChecksumAlgorithm", upload.checksum_algorithm)
        child(parent, "ChecksumType", upload.checksum_type or "COMPOSITE")


def uploads_result(bucket: str, request: UploadsRequest, page: UploadsPage) -> ET.Element:
    encode = request.encode
    root = document("ListMultipartUploadsResult")
    child(root, "Bucket", bucket)
    child(root, "KeyMarker", encode(request.key_marker))
    child(root, "UploadIdMarker", request.upload_id_marker)
    if page.truncated:
        child(root, "NextKeyMarker", encode(page.next_key_marker or ""))
        child(root, "NextUploadIdMarker", page.next_upload_id_marker or "")
    if request.delimiter:
        child(root, "Delimiter", encode(request.delimiter))
    child(root, "Prefix", encode(request.prefix))
    child(root, "MaxUploads", request.max_uploads)
    child(root, "IsTruncated", _flag(page.truncated))
    for upload in page.uploads:
        element = child(root, "Upload")
        child(element, "Key", encode(upload.key))
        child(element, "UploadId", upload.upload_id)
        _who(element, "Initiator", upload.initiator_key)
        _who(element, "Owner", upload.initiator_key)
        child(element, "StorageClass", STORAGE_CLASS)
        child(element, "Initiated", timestamp(upload.initiated_at))
        _upload_checksum(element, upload)
    for prefix in page.common_prefixes:
        child(child(root, "CommonPrefixes"), "Prefix", encode(prefix))
    if request.url_encoding:
        child(root, "EncodingType", "url")
    return root
