"""The one error hierarchy of diststorage.

::

    DiststorageError
    ├── InvalidRequest            the caller asked for something malformed (HTTP 400)
    │   ├── InvalidKey            key not UTF-8, empty, too long, or reserved
    │   ├── InvalidPolicy         X-Redundancy not understood or not satisfiable by design
    │   ├── BodyLengthMismatch    body shorter or longer than its announced length
    │   └── InvalidBucketName     not a name S3 allows for a bucket
    ├── LengthRequired            neither Content-Length nor chunked encoding (411)
    ├── PayloadTooLarge           announced size above the gateway's limit (413)
    ├── RangeNotSatisfiable       Range outside the object (416)
    ├── NotFound                  (404)
    │   ├── ObjectNotFound        no committed object under the key
    │   ├── ChunkNotFound         a node has no chunk with that id
    │   ├── NodeNotFound          the gateway knows no node with that id
    │   ├── NoSuchBucket          no bucket of that name
    │   └── KeyNotFound           no access key with that id (an operator's lookup)
    ├── AlreadyExists             POST of a key that has a committed object (409)
    ├── PreconditionFailed        a conditional write or read whose condition fails (412)
    ├── BucketNotEmpty            deleting a bucket that still holds objects (409)
    ├── BucketAlreadyExists       creating a bucket whose name another key owns (409)
    ├── BucketAlreadyOwnedByYou   creating a bucket the caller owns already (409)
    ├── NodeInUse                 removing a node that still holds chunks in use (409)
    ├── NodePending               draining or activating a node not yet accepted (409)
    ├── MethodNotAllowed          (405)
    ├── Unavailable               the cluster cannot do it now; retrying later may work (503)
    │   ├── NotEnoughNodes        fewer live nodes than the policy needs
    │   ├── NodeUnavailable       one node did not answer in time or refused the connection
    │   └── SlowDown              the caller (or the gateway) has too many uploads open
    ├── InsufficientStorage       nodes have no room for the data (507)
    ├── DataLoss                  stored bytes failed their checksum; never served
    ├── ClientGone                the HTTP client went away mid-request; nothing is answered
    ├── RequestTimeout            the client stopped sending its body for too long (408)
    ├── MasterKeyError            the secrets key file is unusable, or not the database's
    └── AuthError                 the request's authentication failed (403)
        ├── AccessDenied          no credentials, or credentials without the right
        ├── SignatureDoesNotMatch the signature is not the one the secret gives
        ├── InvalidAccessKeyId    no such (active) access key
        ├── RequestTimeTooSkewed  the request's date is more than 15 minutes off
        ├── RequestExpired        a presigned URL used past its expiry
        ├── AuthorizationHeaderMalformed       unparseable, or the wrong region (400)
        ├── AuthorizationQueryParametersError  the same for a presigned URL (400)
        ├── UnsupportedSignature  a signing scheme we do not implement: SigV4A (501)
        └── BadPayload            the body fails what the request declared about it (400)
            ├── XAmzContentSHA256Mismatch  not the signed sha256
            ├── BadDigest                  not the Content-MD5 or x-amz-checksum-* sent
            ├── InvalidDigest              a Content-MD5 or checksum that is no digest
            ├── IncompleteBody             aws-chunked framing cut short or broken
            └── MalformedTrailer           an aws-chunked trailer missing or unparseable

Multipart uploads add (each also names its S3 error code, ``s3_code``)::

    NotFound            └── NoSuchUpload        no open upload with that id (or another key's)
    InvalidRequest      ├── InvalidPart         a listed part was never uploaded, or its ETag
                        │                       or checksum differs from the upload's
                        ├── InvalidPartOrder    listed part numbers do not ascend
                        └── EntityTooSmall      a part but the last is under the minimum size
    RangeNotSatisfiable └── InvalidPartNumber   ?partNumber= past the object's parts (416)

The S3 front end adds::

    InvalidRequest      ├── MalformedXML        a request body that is not the XML asked for
                        └── MetadataTooLarge    x-amz-meta-* over 2 KiB
    InvalidKey          └── KeyTooLong          a key over 1024 bytes of UTF-8
    NotFound            └── NoSuchBucketPolicy  GetBucketPolicy: buckets have no policies
    NotImplementedFeature                        an S3 feature this server does not offer (501)
    InvalidRequest      └── InvalidLocationConstraint  CreateBucket naming another region

``NodeUnavailable`` differs from ``NotEnoughNodes``: the first is about one node and is usually
absorbed by redundancy (read another shard); the second is the verdict that redundancy could not
absorb the failures. ``AuthError`` differs from ``InvalidRequest``: the request may be
well-formed, but who sent it, or that it reached us unchanged, could not be established. Most
``BadPayload`` errors are found at the body's end, which the pipelines read before they commit.

Every class carries ``code``, the native API's error code, and ``s3_code``, the S3 API's
``<Code>``. The S3 front end maps ``AlreadyExists`` itself: a create over an existing key means
different things to different S3 calls. Foreign exceptions (gRPC, SQLAlchemy, aiohttp) are
translated into these where they enter the program and nowhere else.

The bucket and key errors' ``s3_code`` is the AWS code an S3 client expects. ``KeyNotFound``
is about access keys, never object keys (those are ``ObjectNotFound``); ``MasterKeyError``
never reaches a request: a gateway whose master key file is unusable refuses to start.
"""

from __future__ import annotations


class DiststorageError(Exception):
    """Base of every error diststorage raises on purpose."""

    code = "internal_error"
    s3_code = "InternalError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(DiststorageError):
    code = "invalid_request"
    s3_code = "InvalidRequest"


class InvalidKey(InvalidRequest):
    code = "invalid_key"


class KeyTooLong(InvalidKey):
    s3_code = "KeyTooLongError"


class MetadataTooLarge(InvalidRequest):
    """User metadata (``x-amz-meta-*``) over S3's 2 KiB."""

    code = "metadata_too_large"
    s3_code = "MetadataTooLarge"


class InvalidPolicy(InvalidRequest):
    code = "invalid_redundancy"


class BodyLengthMismatch(InvalidRequest):
    code = "body_length_mismatch"
    s3_code = "IncompleteBody"


class LengthRequired(DiststorageError):
    code = "length_required"
    s3_code = "MissingContentLength"


class PayloadTooLarge(DiststorageError):
    code = "payload_too_large"
    s3_code = "EntityTooLarge"


class RangeNotSatisfiable(DiststorageError):
    code = "range_not_satisfiable"
    s3_code = "InvalidRange"

    def __init__(self, message: str, object_size: int) -> None:
        super().__init__(message)
        self.object_size = object_size


class NotFound(DiststorageError):
    code = "not_found"
    s3_code = "NoSuchKey"


class ObjectNotFound(NotFound):
    code = "object_not_found"


class ChunkNotFound(NotFound):
    code = "chunk_not_found"
    # A chunk a node lacks is the gateway's problem to mask, never the S3 client's.
    s3_code = "InternalError"


class NodeNotFound(NotFound):
    code = "node_not_found"
    s3_code = "InternalError"


class AlreadyExists(DiststorageError):
    code = "already_exists"


class PreconditionFailed(DiststorageError):
    code = "precondition_failed"
    s3_code = "PreconditionFailed"


class NodeInUse(DiststorageError):
    code = "node_in_use"


class NodePending(DiststorageError):
    """Unlike NodeInUse, about admission: the node awaits an operator's acceptance
    (``--node-admission manual``), and drain or activate would admit it by the back door."""

    code = "node_pending"


class MethodNotAllowed(DiststorageError):
    code = "method_not_allowed"
    s3_code = "MethodNotAllowed"


class Unavailable(DiststorageError):
    code = "unavailable"
    s3_code = "ServiceUnavailable"


class NotEnoughNodes(Unavailable):
    code = "not_enough_nodes"
    # What S3 clients back off on and retry.
    s3_code = "SlowDown"


class NodeUnavailable(Unavailable):
    code = "node_unavailable"


class SlowDown(Unavailable):
    """Differs from ``NotEnoughNodes``: the cluster is fine, but the caller (or every caller
    of this gateway together) has as many uploads open as allowed. ``retry_after_s`` is what
    the answer's Retry-After says."""

    code = "slow_down"
    s3_code = "SlowDown"

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class InsufficientStorage(DiststorageError):
    """S3 has no code for a full store: SlowDown (503) tells a client to back off and retry,
    which helps once space is freed or nodes are added."""

    code = "insufficient_storage"
    s3_code = "SlowDown"


class DataLoss(DiststorageError):
    code = "data_loss"


class ClientGone(DiststorageError):
    code = "client_gone"


class RequestTimeout(DiststorageError):
    """Differs from ``ClientGone``: the client is still connected but sends nothing; the
    gateway gives up on it (and answers, in case it still listens)."""

    code = "request_timeout"
    s3_code = "RequestTimeout"


class AuthError(DiststorageError):
    """The request's authentication failed. Messages never hold a secret, a signing key or a
    string that was signed: those go, where S3 shows them, in attributes."""

    code = "access_denied"
    s3_code = "AccessDenied"


class AccessDenied(AuthError):
    code = "access_denied"


class SignatureDoesNotMatch(AuthError):
    """What was signed, for the S3 error body (as AWS shows it); never in the native one."""

    code = "signature_does_not_match"
    s3_code = "SignatureDoesNotMatch"

    def __init__(
        self,
        message: str,
        string_to_sign: str = "",
        canonical_request: str = "",
        access_key_id: str = "",
    ) -> None:
        super().__init__(message)
        self.string_to_sign = string_to_sign
        self.canonical_request = canonical_request
        self.access_key_id = access_key_id


class InvalidAccessKeyId(AuthError):
    code = "invalid_access_key_id"
    s3_code = "InvalidAccessKeyId"


class RequestTimeTooSkewed(AuthError):
    code = "request_time_too_skewed"
    s3_code = "RequestTimeTooSkewed"


class RequestExpired(AuthError):
    """A presigned URL past its expiry: AWS answers AccessDenied, "Request has expired"."""

    code = "request_expired"
    s3_code = "AccessDenied"


class AuthorizationHeaderMalformed(AuthError):
    """``region``, when set, is the one the credential scope must name (S3's ``<Region>``)."""

    code = "authorization_header_malformed"
    s3_code = "AuthorizationHeaderMalformed"

    def __init__(self, message: str, region: str | None = None) -> None:
        super().__init__(message)
        self.region = region


class AuthorizationQueryParametersError(AuthError):
    code = "authorization_query_parameters_error"
    s3_code = "AuthorizationQueryParametersError"

    def __init__(self, message: str, region: str | None = None) -> None:
        super().__init__(message)
        self.region = region


class UnsupportedSignature(AuthError):
    code = "unsupported_signature"
    s3_code = "NotImplemented"


class BadPayload(AuthError):
    code = "bad_payload"
    s3_code = "InvalidRequest"


class XAmzContentSHA256Mismatch(BadPayload):
    code = "content_sha256_mismatch"
    s3_code = "XAmzContentSHA256Mismatch"


class BadDigest(BadPayload):
    code = "bad_digest"
    s3_code = "BadDigest"


class InvalidDigest(BadPayload):
    code = "invalid_digest"
    s3_code = "InvalidDigest"


class IncompleteBody(BadPayload):
    code = "incomplete_body"
    s3_code = "IncompleteBody"


class MalformedTrailer(BadPayload):
    code = "malformed_trailer"
    s3_code = "MalformedTrailerError"


# -- buckets and access keys ----------------------------------------------------------------


class InvalidBucketName(InvalidRequest):
    code = "invalid_bucket_name"
    s3_code = "InvalidBucketName"


class NoSuchBucket(NotFound):
    code = "no_such_bucket"
    s3_code = "NoSuchBucket"


class KeyNotFound(NotFound):
    code = "key_not_found"
    s3_code = "InvalidAccessKeyId"


class BucketNotEmpty(DiststorageError):
    code = "bucket_not_empty"
    s3_code = "BucketNotEmpty"


class BucketAlreadyExists(DiststorageError):
    """The name is taken by a bucket of another owner (bucket names are global)."""

    code = "bucket_already_exists"
    s3_code = "BucketAlreadyExists"


class BucketAlreadyOwnedByYou(DiststorageError):
    """Unlike ``BucketAlreadyExists``: the caller owns that bucket already, so its intent is
    met (some clients treat this one as success)."""

    code = "bucket_already_owned_by_you"
    s3_code = "BucketAlreadyOwnedByYou"


class MasterKeyError(DiststorageError):
    """The secrets key file is missing where it must exist, has the wrong size, can be read
    by others than its owner, or is not the key the database's secrets were sealed under."""

    code = "master_key_error"


# -- multipart uploads -------------------------------------------------------------------------


class NoSuchUpload(NotFound):
    code = "no_such_upload"
    s3_code = "NoSuchUpload"


class InvalidPart(InvalidRequest):
    code = "invalid_part"
    s3_code = "InvalidPart"


class InvalidPartOrder(InvalidRequest):
    code = "invalid_part_order"
    s3_code = "InvalidPartOrder"


class EntityTooSmall(InvalidRequest):
    code = "entity_too_small"
    s3_code = "EntityTooSmall"


class InvalidPartNumber(RangeNotSatisfiable):
    code = "invalid_part_number"
    s3_code = "InvalidPartNumber"


class MalformedXML(InvalidRequest):
    code = "malformed_xml"
    s3_code = "MalformedXML"


class NoSuchBucketPolicy(NotFound):
    code = "no_such_bucket_policy"
    s3_code = "NoSuchBucketPolicy"


class NotImplementedFeature(DiststorageError):
    """A request for an S3 feature this server does not offer (versioning, tagging, ...)."""

    code = "not_implemented"
    s3_code = "NotImplemented"


class InvalidLocationConstraint(InvalidRequest):
    """CreateBucket naming a region other than the gateway's own (``--s3-region``)."""

    code = "invalid_location_constraint"
    s3_code = "InvalidLocationConstraint"
