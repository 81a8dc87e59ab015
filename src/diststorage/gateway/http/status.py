"""Which HTTP status each of our errors gets, in one table for every front end (the native
API answers it with a JSON body, S3 with its XML one)."""

from __future__ import annotations

from diststorage.core import errors as e

StatusTable = tuple[tuple[type[e.DiststorageError], int], ...]

# Most specific class first: the first match wins.
STATUS: StatusTable = (
    (e.InvalidPart, 400),
    (e.InvalidPartOrder, 400),
    (e.EntityTooSmall, 400),
    (e.InvalidRequest, 400),
    (e.LengthRequired, 411),
    (e.PayloadTooLarge, 413),
    (e.InvalidPartNumber, 416),
    (e.RangeNotSatisfiable, 416),
    (e.NoSuchUpload, 404),
    (e.NotFound, 404),
    (e.AlreadyExists, 409),
    (e.PreconditionFailed, 412),
    (e.BucketNotEmpty, 409),
    (e.BucketAlreadyExists, 409),
    (e.BucketAlreadyOwnedByYou, 409),
    (e.NodeInUse, 409),
    (e.MethodNotAllowed, 405),
    (e.NotImplementedFeature, 501),
    (e.Unavailable, 503),
    (e.InsufficientStorage, 507),
    (e.DataLoss, 503),
    (e.ClientGone, 400),
    (e.RequestTimeout, 408),
    (e.AuthorizationHeaderMalformed, 400),
    (e.AuthorizationQueryParametersError, 400),
    (e.BadPayload, 400),
    (e.UnsupportedSignature, 501),
    (e.AuthError, 403),
)


def status_of(error: e.DiststorageError, overrides: StatusTable = ()) -> int:
    """The error's status: the first match in ``overrides`` (a front end's own answers),
    else in the table; 500 for an error neither names."""
    for kind, status in (*overrides, *STATUS):
        if isinstance(error, kind):
            return status
    return 500
