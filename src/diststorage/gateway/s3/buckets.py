"""S3 handlers for buckets: ListBuckets, Create/Head/DeleteBucket, and the read-only
configuration answers clients ask for before they do anything else (location, versioning,
ACLs, policy).

The configuration answers are what this server is, not stored settings: every bucket lives in
the gateway's one region (``settings.s3_region``), is unversioned, has the canned ``private``
ACL (its owner holds FULL_CONTROL, access is what the key grants say) and has no bucket policy.
s3cmd asks GetBucketLocation before any bucket operation, and rclone and consoles ask for the
ACL and versioning, so these must answer as AWS does even though nothing here can be changed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from diststorage.core.errors import (
    InvalidLocationConstraint,
    InvalidRequest,
    MalformedXML,
    NoSuchBucketPolicy,
    NotImplementedFeature,
)
from diststorage.gateway.http.callers import request_body
from diststorage.gateway.s3.call import S3Call, S3Handlers
from diststorage.gateway.s3.listing_codec import (
    decode_continuation_token,
    encode_continuation_token,
)
from diststorage.gateway.s3.routing import Op
from diststorage.gateway.s3.xml import (
    child,
    document,
    local_name,
    read_xml,
    text_of,
    timestamp,
    xml_response,
)
from diststorage.meta import BucketInfo

# A CreateBucketConfiguration is a few hundred bytes; this leaves room for tags and whitespace.
MAX_CONFIGURATION_BYTES = 64 * 1024
# The region AWS leaves unnamed: GetBucketLocation answers an empty LocationConstraint for it.
US_EAST_1 = "us-east-1"
# CreationDate of the buckets that predate accounts (``default``), which no key created: the
# element is there for clients that read it unconditionally (s3cmd ``ls``).
UNKNOWN_CREATION = datetime(1970, 1, 1, tzinfo=UTC)
# ListBuckets' max-buckets, as AWS bounds it.
MAX_BUCKETS = 10_000
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


@dataclass(frozen=True, slots=True)
class Owner:
    """Who S3 shows as an owner: an access key's id and name."""

    key_id: str
    name: str

    def write(self, parent: ET.Element, tag: str = "Owner") -> ET.Element:
        element = child(parent, tag)
        child(element, "ID", self.key_id)
        child(element, "DisplayName", self.name)
        return element


async def bucket_owner(call: S3Call) -> Owner:
    """The key that owns the call's bucket; the root key for a bucket no key created."""
    services = call.services
    bucket = await services.store.accounts.get_bucket(call.bucket)
    key_id = bucket.owner_key_id or services.keys.root_key_id
    known = await services.keys.key(key_id)
    return Owner(key_id, known.principal.name if known is not None else key_id)


async def list_buckets(call: S3Call) -> web.StreamResponse:
    """An admin key sees every bucket, any other key those it holds a grant on. ``prefix``,
    ``max-buckets`` and ``continuation-token`` (AWS's 2024 additions, which boto3's paginator
    sends) narrow that down."""
    principal = call.principal
    accounts = call.services.store.accounts
    buckets = await accounts.list_buckets(None if principal.is_admin else principal.access_key_id)
    page, next_token = bucket_page(buckets, call.query)
    root = document("ListAllMyBucketsResult")
    listed = child(root, "Buckets")
    for bucket in page:
        entry = child(listed, "Bucket")
        child(entry, "Name", bucket.name)
        child(entry, "CreationDate", timestamp(bucket.created_at or UNKNOWN_CREATION))
        child(entry, "BucketRegion", call.settings.s3_region)
    Owner(principal.access_key_id, principal.name).write(root)
    if next_token is not None:
        child(root, "ContinuationToken", next_token)
    if "prefix" in call.query:
        child(root, "Prefix", call.query["prefix"])
    return xml_response(root)


def bucket_page(
    buckets: Sequence[BucketInfo], query: Mapping[str, str]
) -> tuple[list[BucketInfo], str | None]:
    """The buckets (sorted by name) a ListBuckets query asks for, and the token of the next
    page when there is one. Tokens are the listing's own (``listing_codec``)."""
    prefix = query.get("prefix", "")
    token = query.get("continuation-token")
    after = decode_continuation_token(token) if token is not None else ""
    limit = _max_buckets(query.get("max-buckets"))
    chosen = [b for b in buckets if b.name.startswith(prefix) and b.name > after]
    if limit is None or len(chosen) <= limit:
        return chosen, None
    return chosen[:limit], encode_continuation_token(chosen[limit - 1].name)


def _max_buckets(value: str | None) -> int | None:
    if value is None:
        return None
    if not value.isdigit() or not 1 <= int(value) <= MAX_BUCKETS:
        raise InvalidRequest(f"max-buckets must be an integer from 1 to {MAX_BUCKETS}")
    return int(value)


async def create_bucket(call: S3Call) -> web.StreamResponse:
    if call.headers.get("x-amz-bucket-object-lock-enabled", "").lower() == "true":
        raise NotImplementedFeature("object lock is not supported on this server")
    constraint = await _location_constraint(call)
    region = call.settings.s3_region
    if constraint not in ("", region):
        raise InvalidLocationConstraint(
            f"The specified location-constraint is not valid: this server's region is {region}"
        )
    await call.services.accounts.create_bucket(call.bucket, call.principal.access_key_id)
    return web.Response(status=200, headers={"Location": f"/{call.bucket}"})


async def _location_constraint(call: S3Call) -> str:
    """The LocationConstraint of the request's CreateBucketConfiguration ("" without one).
    The body is read through the verifying body, so its signed sha256 is checked."""
    request = call.request
    if not request.body_exists:
        return ""
    body, _ = request_body(request, request.content_length, MAX_CONFIGURATION_BYTES)
    # One byte past the cap: a shorter read is the body's end, whose checks it ran.
    data = await body.read_up_to(MAX_CONFIGURATION_BYTES + 1)
    if not data:
        return ""
    root = await read_xml(_Read(data), MAX_CONFIGURATION_BYTES)
    if local_name(root) != "CreateBucketConfiguration":
        raise MalformedXML("the body must be a CreateBucketConfiguration document")
    return (text_of(root, "LocationConstraint") or "").strip()


class _Read:
    """Bytes read already, as a byte source for ``read_xml`` (which refuses too many)."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    async def read_up_to(self, size: int) -> bytes:
        piece, self._data = self._data[:size], self._data[size:]
        return piece


async def head_bucket(call: S3Call) -> web.StreamResponse:
    # The guard found the bucket and the caller's READ on it.
    return web.Response(status=200, headers={"x-amz-bucket-region": call.settings.s3_region})


async def delete_bucket(call: S3Call) -> web.StreamResponse:
    await call.services.accounts.delete_bucket(call.bucket)
    return web.Response(status=204)


async def get_bucket_location(call: S3Call) -> web.StreamResponse:
    region = call.settings.s3_region
    root = document("LocationConstraint")
    if region != US_EAST_1:
        root.text = region
    return xml_response(root)


async def get_bucket_versioning(call: S3Call) -> web.StreamResponse:
    # Never versioned: AWS answers a bucket that never was with no Status at all.
    return xml_response(document("VersioningConfiguration"))


async def get_bucket_acl(call: S3Call) -> web.StreamResponse:
    return xml_response(_private_acl(await bucket_owner(call)))


async def get_object_acl(call: S3Call) -> web.StreamResponse:
    await call.services.store.get_info(call.bucket, call.key)  # NoSuchKey for none
    return xml_response(_private_acl(await bucket_owner(call)))


def _private_acl(owner: Owner) -> ET.Element:
    """The canned ``private`` ACL: the owner holds FULL_CONTROL, nobody else anything."""
    root = document("AccessControlPolicy")
    owner.write(root)
    grants = child(root, "AccessControlList")
    grant = child(grants, "Grant")
    grantee = owner.write(grant, "Grantee")
    grantee.set("xmlns:xsi", _XSI)
    grantee.set("xsi:type", "CanonicalUser")
    child(grant, "Permission", "FULL_CONTROL")
    return root


async def get_bucket_policy(call: S3Call) -> web.StreamResponse:
    raise NoSuchBucketPolicy("The bucket policy does not exist")


HANDLERS: S3Handlers = {
    Op.LIST_BUCKETS: list_buckets,
    Op.CREATE_BUCKET: create_bucket,
    Op.HEAD_BUCKET: head_bucket,
    Op.DELETE_BUCKET: delete_bucket,
    Op.GET_BUCKET_LOCATION: get_bucket_location,
    Op.GET_BUCKET_VERSIONING: get_bucket_versioning,
    Op.GET_BUCKET_ACL: get_bucket_acl,
    Op.GET_OBJECT_ACL: get_object_acl,
    Op.GET_BUCKET_POLICY: get_bucket_policy,
}
