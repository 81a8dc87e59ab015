"""Errors to HTTP, in one table. Every error body is JSON:
``{"error": code, "message": text, "request_id": id}``, the id also in ``X-Request-Id``.

The body holds the error's code and message only: never what an ``AuthError`` carries in its
attributes for the S3 XML body (a StringToSign or CanonicalRequest), since the native API is
no place to debug a signer from.
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from diststorage.core import errors as e
from diststorage.core.request_ids import HEADER, new_request_id
from diststorage.gateway.http.access import request_id_of
from diststorage.gateway.http.status import add_error_headers, status_of

log = logging.getLogger(__name__)


def error_response(status: int, code: str, message: str, request_id: str) -> web.Response:
    return web.json_response(
        {"error": code, "message": message, "request_id": request_id},
        status=status,
        headers={HEADER: request_id},
    )


# Codes of the answers the HTTP server gives before any handler runs (``http.server``).
_PROTOCOL_CODES = {408: "request_timeout", 431: "headers_too_large", 503: "slow_down"}


def protocol_error_response(status: int, message: str) -> web.Response:
    """A request the HTTP server refused on its own (a malformed head, too slow, too many
    connections): the same JSON body as every other error, with an id of its own."""
    code = _PROTOCOL_CODES.get(status, "bad_request")
    return error_response(status, code, message, new_request_id())


def response_for(error: e.DiststorageError, request_id: str) -> web.Response:
    response = error_response(status_of(error), error.code, error.message, request_id)
    add_error_headers(response, error)
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
        return response_for(error, request_id_of(request))
    except web.HTTPException as http_error:
        if http_error.status < 400:
            raise
        code = http_error.reason.lower().replace(" ", "_")
        return error_response(http_error.status, code, http_error.reason, request_id_of(request))
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(
            500, "internal_error", "the gateway failed; see its log", request_id_of(request)
        )
