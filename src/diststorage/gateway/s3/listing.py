"""S3 handlers for ListObjects (V1) and ListObjectsV2: one page of ``store.list_keys`` written
as a ListBucketResult.

What the query asks and what the answer's head says (markers, tokens, ``encoding-type=url``)
is ``listing_codec``'s; this module only runs the page and writes the XML, in the element
order AWS uses (clients that parse with a schema, the Java SDK v1's SAX parser among them,
expect it). Common prefixes and objects share the page's max-keys, as on AWS.

Objects have no owner of their own here: a listing that shows owners (V1 always, V2 with
``fetch-owner=true``) shows the bucket's.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from aiohttp import web

from diststorage.gateway.s3.buckets import Owner, bucket_owner
from diststorage.gateway.s3.call import S3Call, S3Handlers
from diststorage.gateway.s3.listing_codec import (
    ListRequest,
    ListResultHead,
    ListVersion,
    list_result_head,
    parse_list_request,
)
from diststorage.gateway.s3.routing import Op
from diststorage.gateway.s3.xml import child, document, quoted, timestamp, xml_response
from diststorage.meta import KeyPage, ObjectInfo

STORAGE_CLASS = "STANDARD"


async def list_objects(call: S3Call) -> web.StreamResponse:
    """ListObjects and ListObjectsV2 (the query's ``list-type`` tells them apart)."""
    request = parse_list_request(call.query)
    page = await call.services.store.list_keys(
        call.bucket, request.prefix, request.delimiter, request.start, request.max_keys
    )
    head = list_result_head(
        request,
        truncated=page.truncated,
        next_start_after=page.next_start_after,
        key_count=len(page.objects) + len(page.common_prefixes),
    )
    owner = await bucket_owner(call) if request.lists_owner and page.objects else None
    root = document("ListBucketResult")
    child(root, "Name", call.bucket)
    if request.version is ListVersion.V1:
        _v1_head(root, head)
    else:
        _v2_head(root, head)
    _entries(root, request, page, owner)
    return xml_response(root)


def _v1_head(root: ET.Element, head: ListResultHead) -> None:
    child(root, "Prefix", head.prefix)
    child(root, "Marker", head.marker or "")
    if head.next_marker is not None:
        child(root, "NextMarker", head.next_marker)
    child(root, "MaxKeys", head.max_keys)
    if head.delimiter is not None:
        child(root, "Delimiter", head.delimiter)
    if head.encoding_type is not None:
        child(root, "EncodingType", head.encoding_type)
    child(root, "IsTruncated", _flag(head.is_truncated))


def _v2_head(root: ET.Element, head: ListResultHead) -> None:
    child(root, "Prefix", head.prefix)
    if head.continuation_token is not None:
        child(root, "ContinuationToken", head.continuation_token)
    if head.next_continuation_token is not None:
        child(root, "NextContinuationToken", head.next_continuation_token)
    if head.start_after is not None:
        child(root, "StartAfter", head.start_after)
    child(root, "KeyCount", head.key_count or 0)
    child(root, "MaxKeys", head.max_keys)
    if head.delimiter is not None:
        child(root, "Delimiter", head.delimiter)
    if head.encoding_type is not None:
        child(root, "EncodingType", head.encoding_type)
    child(root, "IsTruncated", _flag(head.is_truncated))


def _entries(root: ET.Element, request: ListRequest, page: KeyPage, owner: Owner | None) -> None:
    for info in page.objects:
        _contents(child(root, "Contents"), request, info, owner)
    for prefix in page.common_prefixes:
        child(child(root, "CommonPrefixes"), "Prefix", request.encode(prefix))


def _contents(
    entry: ET.Element, request: ListRequest, info: ObjectInfo, owner: Owner | None
) -> None:
    child(entry, "Key", request.encode(info.key))
    child(entry, "LastModified", timestamp(info.created_at))
    child(entry, "ETag", quoted(info.etag))
    if info.checksum is not None:
        child(entry, "ChecksumAlgorithm", info.checksum.algorithm)
        child(entry, "ChecksumType", info.checksum.kind)
    child(entry, "Size", info.size_bytes)
    if owner is not None:
        owner.write(entry)
    child(entry, "StorageClass", STORAGE_CLASS)


def _flag(value: bool) -> str:
    return "true" if value else "false"


HANDLERS: S3Handlers = {
    Op.LIST_OBJECTS: list_objects,
    Op.LIST_OBJECTS_V2: list_objects,
}
