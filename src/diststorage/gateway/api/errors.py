"""Errors to HTTP, in one table. Every error body is JSON: {"error": code, "message": text}.

The body holds the error's code and message only: never what an ``AuthError`` carries in its
attributes for the S3 XML body (a StringToSign or CanonicalRequest), since the native API is
no place to debug a signer from.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from diststorage.core import errors as e

log = logging.getLogger(__name__)

# Most specific class first: the first match wins.
STATUS: tuple[tuple[type[e.DiststorageError], int], ...] = (
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
    (e.Unavailable, 503),
    (e.InsufficientStorage, 507),
    (e.DataLoss, 503),
    (e.ClientGone, 400),
    (e.AuthorizationHeaderMalformed, 400),
    (e.AuthorizationQueryParametersError, 400),
    (e.BadPayload, 400),
    (e.UnsupportedSignature, 501),
    (e.AuthError, 403),
)


def status_of(error: e.DiststorageError) -> int:
    for kind, status in STATUS:
        if isinstance(error, kind):
            return status
    return 500


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": code, "message": message}, status=status)


def response_for(error: e.DiststorageError) -> web.Response:
    response = error_response(status_of(error), error.code, error.message)
    if isinstance(error, e.RangeNotSatisfiable):
        response.headers["Content-Range"] = f"bytes */{error.object_size}"
    if isinstance(error, e.MethodNotAllowed):
        response.headers["Allow"] = "GET, HEAD, PUT, POST, DELETE"
    return response


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place where errors become HTTP answers; nothing else leaks a traceback."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except e.DiststorageError as error:
        if status_of(error) >= 500:
            log.warning("%s %s → %s: %s", request.method, request.path, error.code, error)
        return response_for(error)
    except web.HTTPException as http_error:
        if http_error.status < 400:
            raise
        code = http_error.reason.lower().replace(" ", "_")
        return error_response(http_error.status, code, http_error.reason)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, "internal_error", "the gateway failed; see its log")
