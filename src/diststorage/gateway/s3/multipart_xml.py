"""The XML of the multipart operations: the CompleteMultipartUpload request read into the
parts it lists, and the documents Create, UploadPartCopy and Complete answer.

A Complete body names each part by number and the ETag its upload answered, quoted or not
(S3.md pitfall 6), with the part's checksum as ``Checksum<ALGORITHM>`` when the client has
one. Anything that is not that shape is MalformedXML, as on AWS; which parts exist, and in
what order, the store judges (InvalidPart, InvalidPartOrder, EntityTooSmall).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime

from diststorage.core.errors import MalformedXML
from diststorage.gateway.s3.xml import (
    child,
    children_named,
    document,
    local_name,
    quoted,
    text_of,
    timestamp,
)
from diststorage.meta import ListedPart, StoredChecksum
from diststorage.s3auth import ChecksumAlgorithm

COMPLETE_ROOT = "CompleteMultipartUpload"
# A part number as S3 writes it; the range (1..10000) is the store's to judge.
_PART_NUMBER = re.compile(r"[0-9]{1,9}")
_MALFORMED = (
    "The XML you provided was not well-formed or did not validate against our published schema."
)


def checksum_element(algorithm: str) -> str:
    """The element (and botocore member) that carries a checksum: ``ChecksumCRC32``, ..."""
    return "Checksum" + ChecksumAlgorithm(algorithm).value


def add_checksum(parent: ET.Element, checksum: StoredChecksum | None) -> None:
    if checksum is not None:
        child(parent, checksum_element(checksum.algorithm), checksum.value)


def listed_parts(root: ET.Element) -> list[ListedPart]:
    """The parts a CompleteMultipartUpload document lists, in its order; MalformedXML for
    another root, no part, or a part without a number or an ETag."""
    if local_name(root) != COMPLETE_ROOT:
        raise MalformedXML(_MALFORMED)
    parts = [_listed_part(element) for element in children_named(root, "Part")]
    if not parts:
        raise MalformedXML(_MALFORMED)
    return parts


def _listed_part(element: ET.Element) -> ListedPart:
    number = (text_of(element, "PartNumber") or "").strip()
    etag = text_of(element, "ETag")
    if not _PART_NUMBER.fullmatch(number) or not etag:
        raise MalformedXML(_MALFORMED)
    return ListedPart(int(number), etag.strip(), _part_checksum(element))


def _part_checksum(element: ET.Element) -> StoredChecksum | None:
    """The part's checksum, if the client names one (the first, should it name several)."""
    for algorithm in ChecksumAlgorithm:
        value = text_of(element, checksum_element(algorithm))
        if value:
            return StoredChecksum(algorithm.value, "FULL_OBJECT", value.strip())
    return None


def initiate_result(bucket: str, key: str, upload_id: str) -> ET.Element:
    root = document("InitiateMultipartUploadResult")
    child(root, "Bucket", bucket)
    child(root, "Key", key)
    child(root, "UploadId", upload_id)
    return root


def copy_part_result(etag: str, modified: datetime, checksum: StoredChecksum | None) -> ET.Element:
    root = document("CopyPartResult")
    child(root, "ETag", quoted(etag))
    child(root, "LastModified", timestamp(modified))
    add_checksum(root, checksum)
    return root


def complete_result(
    location: str, bucket: str, key: str, etag: str, checksum: StoredChecksum | None
) -> ET.Element:
    root = document("CompleteMultipartUploadResult")
    child(root, "Location", location)
    child(root, "Bucket", bucket)
    child(root, "Key", key)
    child(root, "ETag", quoted(etag))
    add_checksum(root, checksum)
    if checksum is not None:
        child(root, "ChecksumType", checksum.kind)
    return root
