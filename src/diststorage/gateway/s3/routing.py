"""Which S3 operation a request is, from its method, its target and its query's
sub-resources, and which right on the bucket that operation needs (S3.md §2).

Sub-resources this server does not offer (tagging, lifecycle, cors, ...) are NotImplemented
(501), never mistaken for an operation on the object or bucket itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from diststorage.core.errors import MethodNotAllowed, NotImplementedFeature
from diststorage.gateway.auth.ports import Access
from diststorage.gateway.s3.addressing import Target


class Op(StrEnum):
    LIST_BUCKETS = "ListBuckets"
    CREATE_BUCKET = "CreateBucket"
    HEAD_BUCKET = "HeadBucket"
    DELETE_BUCKET = "DeleteBucket"
    GET_BUCKET_LOCATION = "GetBucketLocation"
    GET_BUCKET_VERSIONING = "GetBucketVersioning"
    GET_BUCKET_ACL = "GetBucketAcl"
    GET_BUCKET_POLICY = "GetBucketPolicy"
    LIST_OBJECTS = "ListObjects"
    LIST_OBJECTS_V2 = "ListObjectsV2"
    LIST_UPLOADS = "ListMultipartUploads"
    DELETE_OBJECTS = "DeleteObjects"
    PUT_OBJECT = "PutObject"
    COPY_OBJECT = "CopyObject"
    GET_OBJECT = "GetObject"
    HEAD_OBJECT = "HeadObject"
    DELETE_OBJECT = "DeleteObject"
    GET_OBJECT_ACL = "GetObjectAcl"
    CREATE_UPLOAD = "CreateMultipartUpload"
    UPLOAD_PART = "UploadPart"
    UPLOAD_PART_COPY = "UploadPartCopy"
    COMPLETE_UPLOAD = "CompleteMultipartUpload"
    ABORT_UPLOAD = "AbortMultipartUpload"
    LIST_PARTS = "ListParts"


# The right each operation needs on its bucket; None: any authenticated key (ListBuckets
# shows only what the key holds grants on; CreateBucket checks the key's own flag).
ACCESS: Mapping[Op, Access | None] = {
    Op.LIST_BUCKETS: None,
    Op.CREATE_BUCKET: None,
    Op.HEAD_BUCKET: Access.READ,
    Op.DELETE_BUCKET: Access.OWNER,
    Op.GET_BUCKET_LOCATION: Access.READ,
    Op.GET_BUCKET_VERSIONING: Access.READ,
    Op.GET_BUCKET_ACL: Access.READ,
    Op.GET_BUCKET_POLICY: Access.READ,
    Op.LIST_OBJECTS: Access.READ,
    Op.LIST_OBJECTS_V2: Access.READ,
    Op.LIST_UPLOADS: Access.READ,
    Op.DELETE_OBJECTS: Access.WRITE,
    Op.PUT_OBJECT: Access.WRITE,
    Op.COPY_OBJECT: Access.WRITE,
    Op.GET_OBJECT: Access.READ,
    Op.HEAD_OBJECT: Access.READ,
    Op.DELETE_OBJECT: Access.WRITE,
    Op.GET_OBJECT_ACL: Access.READ,
    Op.CREATE_UPLOAD: Access.WRITE,
    Op.UPLOAD_PART: Access.WRITE,
    Op.UPLOAD_PART_COPY: Access.WRITE,
    Op.COMPLETE_UPLOAD: Access.WRITE,
    Op.ABORT_UPLOAD: Access.WRITE,
    Op.LIST_PARTS: Access.READ,
}

# Sub-resources that name another operation than the object's or bucket's own; those we
# do not route are answered NotImplemented.
_SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption",
        "intelligent-tiering", "inventory", "legal-hold", "lifecycle", "location", "logging",
        "metrics", "notification", "object-lock", "ownershipControls", "policy",
        "policyStatus", "publicAccessBlock", "replication", "requestPayment", "restore",
        "retention", "select", "tagging", "torrent", "uploadId", "uploads", "versioning",
        "versionId", "versions", "website",
    }
)  # fmt: skip


def route(method: str, target: Target, query: Mapping[str, str], copy_source: bool) -> Op:
    """The operation; NotImplementedFeature or MethodNotAllowed for none we serve.
    ``copy_source``: the request carries ``x-amz-copy-source``."""
    named = set(_SUBRESOURCES.intersection(query))
    if query.get("versionId") == "null":
        named.discard("versionId")  # the one version an unversioned bucket has
    if not target.bucket:
        if method in ("GET", "HEAD") and not named:
            return Op.LIST_BUCKETS
        raise MethodNotAllowed(f"{method} is not an operation on the service")
    op = (
        _bucket_op(method, named, query)
        if not target.key
        else _object_op(method, named, query, copy_source)
    )
    if op is None:
        what = ", ".join(sorted(named)) or method
        raise NotImplementedFeature(f"{what} is not supported on this server")
    return op


def _bucket_op(method: str, named: set[str], query: Mapping[str, str]) -> Op | None:
    match method, sorted(named):
        case "PUT", []:
            return Op.CREATE_BUCKET
        case "HEAD", []:
            return Op.HEAD_BUCKET
        case "DELETE", []:
            return Op.DELETE_BUCKET
        case "GET", []:
            return Op.LIST_OBJECTS_V2 if query.get("list-type") == "2" else Op.LIST_OBJECTS
        case "GET", ["location"]:
            return Op.GET_BUCKET_LOCATION
        case "GET", ["versioning"]:
            return Op.GET_BUCKET_VERSIONING
        case "GET", ["acl"]:
            return Op.GET_BUCKET_ACL
        case "GET", ["policy"]:
            return Op.GET_BUCKET_POLICY
        case "GET", ["uploads"]:
            return Op.LIST_UPLOADS
        case "POST", ["delete"]:
            return Op.DELETE_OBJECTS
    return None


def _object_op(
    method: str, named: set[str], query: Mapping[str, str], copy_source: bool
) -> Op | None:
    match method, sorted(named):
        case "PUT", []:
            return Op.COPY_OBJECT if copy_source else Op.PUT_OBJECT
        case "PUT", ["uploadId"] if "partNumber" in query:
            return Op.UPLOAD_PART_COPY if copy_source else Op.UPLOAD_PART
        case "GET", []:
            return Op.GET_OBJECT
        case "HEAD", []:
            return Op.HEAD_OBJECT
        case "DELETE", []:
            return Op.DELETE_OBJECT
        case "GET", ["acl"]:
            return Op.GET_OBJECT_ACL
        case "POST", ["uploads"]:
            return Op.CREATE_UPLOAD
        case "POST", ["uploadId"]:
            return Op.COMPLETE_UPLOAD
        case "DELETE", ["uploadId"]:
            return Op.ABORT_UPLOAD
        case "GET", ["uploadId"]:
            return Op.LIST_PARTS
    return None
