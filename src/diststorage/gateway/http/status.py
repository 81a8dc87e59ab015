"""Which HTTP status each of our errors gets, in one table for every front end (the native
API answers it with a JSON body, S3 with its XML one)."""

from __future__ import annotations

from aiohttp import web

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
    (e.NodePending, 409),
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


def add_error_headers(response: web.Response, error: e.DiststorageError) -> None:
    """What every front end adds to an error's answer beside its body: the back-off a refused
    client should wait, and the close of a connection whose body was left unread."""
    if isinstance(error, e.SlowDown):
        response.headers["Retry-After"] = str(error.retry_after_s)
    if isinstance(error, e.SlowDown | e.RequestTimeout):
        response.force_close()
    if isinstance(error, e.RangeNotSatisfiable):
        response.headers["Content-Range"] = f"bytes */{error.object_size}"
