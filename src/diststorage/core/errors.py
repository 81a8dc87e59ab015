"""The one error hierarchy of diststorage.

::

    DiststorageError
    ├── InvalidRequest            the caller asked for something malformed (HTTP 400)
    │   ├── InvalidKey            key not UTF-8, empty, too long, or reserved
    │   ├── InvalidPolicy         X-Redundancy not understood or not satisfiable by design
    │   └── BodyLengthMismatch    body shorter or longer than its announced length
    ├── LengthRequired            neither Content-Length nor chunked encoding (411)
    ├── PayloadTooLarge           announced size above the gateway's limit (413)
    ├── RangeNotSatisfiable       Range outside the object (416)
    ├── NotFound                  (404)
    │   ├── ObjectNotFound        no committed object under the key
    │   ├── ChunkNotFound         a node has no chunk with that id
    │   └── NodeNotFound          the gateway knows no node with that id
    ├── AlreadyExists             POST of a key that has a committed object (409)
    ├── PreconditionFailed        a conditional write or read whose condition fails (412)
    ├── NodeInUse                 removing a node that still holds chunks in use (409)
    ├── MethodNotAllowed          (405)
    ├── Unavailable               the cluster cannot do it now; retrying later may work (503)
    │   ├── NotEnoughNodes        fewer live nodes than the policy needs
    │   └── NodeUnavailable       one node did not answer in time or refused the connection
    ├── InsufficientStorage       nodes have no room for the data (507)
    ├── DataLoss                  stored bytes failed their checksum; never served
    └── ClientGone                the HTTP client went away mid-request; nothing is answered

Multipart uploads add (each also names its S3 error code, ``s3_code``)::

    NotFound            └── NoSuchUpload        no open upload with that id (or another key's)
    InvalidRequest      ├── InvalidPart         a listed part was never uploaded, or its ETag
                        │                       or checksum differs from the upload's
                        ├── InvalidPartOrder    listed part numbers do not ascend
                        └── EntityTooSmall      a part but the last is under the minimum size
    RangeNotSatisfiable └── InvalidPartNumber   ?partNumber= past the object's parts (416)

``NodeUnavailable`` differs from ``NotEnoughNodes``: the first is about one node and is usually
absorbed by redundancy (read another shard); the second is the verdict that redundancy could not
absorb the failures. Foreign exceptions (gRPC, SQLAlchemy, aiohttp) are translated into these
where they enter the program and nowhere else.
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
