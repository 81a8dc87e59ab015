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
    ├── MethodNotAllowed          (405)
    ├── Unavailable               the cluster cannot do it now; retrying later may work (503)
    │   ├── NotEnoughNodes        fewer live nodes than the policy needs
    │   └── NodeUnavailable       one node did not answer in time or refused the connection
    ├── InsufficientStorage       nodes have no room for the data (507)
    ├── DataLoss                  stored bytes failed their checksum; never served
    ├── ClientGone                the HTTP client went away mid-request; nothing is answered
    └── MasterKeyError            the secrets key file is unusable, or not the database's

``NodeUnavailable`` differs from ``NotEnoughNodes``: the first is about one node and is usually
absorbed by redundancy (read another shard); the second is the verdict that redundancy could not
absorb the failures. Foreign exceptions (gRPC, SQLAlchemy, aiohttp) are translated into these
where they enter the program and nowhere else.

The bucket and key errors carry ``s3_code`` beside ``code``: the AWS error code an S3 client
expects (``code`` is the native API's snake_case one). ``KeyNotFound`` is about access keys,
never object keys (those are ``ObjectNotFound``); ``MasterKeyError`` never reaches a request:
a gateway whose master key file is unusable refuses to start.
"""

from __future__ import annotations


class DiststorageError(Exception):
    """Base of every error diststorage raises on purpose."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(DiststorageError):
    code = "invalid_request"


class InvalidKey(InvalidRequest):
    code = "invalid_key"


class InvalidPolicy(InvalidRequest):
    code = "invalid_redundancy"


class BodyLengthMismatch(InvalidRequest):
    code = "body_length_mismatch"


class LengthRequired(DiststorageError):
    code = "length_required"


class PayloadTooLarge(DiststorageError):
    code = "payload_too_large"


class RangeNotSatisfiable(DiststorageError):
    code = "range_not_satisfiable"

    def __init__(self, message: str, object_size: int) -> None:
        super().__init__(message)
        self.object_size = object_size


class NotFound(DiststorageError):
    code = "not_found"


class ObjectNotFound(NotFound):
    code = "object_not_found"


class ChunkNotFound(NotFound):
    code = "chunk_not_found"


class NodeNotFound(NotFound):
    code = "node_not_found"


class AlreadyExists(DiststorageError):
    code = "already_exists"


class PreconditionFailed(DiststorageError):
    code = "precondition_failed"


class NodeInUse(DiststorageError):
    code = "node_in_use"


class MethodNotAllowed(DiststorageError):
    code = "method_not_allowed"


class Unavailable(DiststorageError):
    code = "unavailable"


class NotEnoughNodes(Unavailable):
    code = "not_enough_nodes"


class NodeUnavailable(Unavailable):
    code = "node_unavailable"


class InsufficientStorage(DiststorageError):
    code = "insufficient_storage"


class DataLoss(DiststorageError):
    code = "data_loss"


class ClientGone(DiststorageError):
    code = "client_gone"


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
