"""Errors to S3 answers: the status from the one table (``http.status``), S3's XML body
``<Error><Code>…</Code><Message>…</Message>…</Error>`` with the error's ``s3_code``, and no
body at all on HEAD. Signature errors carry what AWS shows (the StringToSign and
CanonicalRequest, the expected Region), so that a client's signer can be debugged; never a
secret. Nothing else leaks a traceback.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET

from aiohttp import web
from aiohttp.typedefs import Handler

from diststorage.core import errors as e
from diststorage.core.request_ids import HEADER, new_request_id
from diststorage.gateway.http.access import request_id_of
from diststorage.gateway.http.status import StatusTable, add_error_headers, status_of
from diststorage.gateway.s3.xml import child, xml_response, xml_safe

log = logging.getLogger(__name__)

# S3 answers these differently from the native API: EntityTooLarge is a 400 on S3, and a
# write the cluster cannot take now is 503 SlowDown, which S3 clients back off from.
_S3_STATUS: StatusTable = (
    (e.PayloadTooLarge, 400),
    (e.InsufficientStorage, 503),
)


def s3_status_of(error: e.DiststorageError) -> int:
    return status_of(error, _S3_STATUS)


def error_response(
    request: web.Request,
    status: int,
    code: str,
    message: str,
    extra: dict[str, str] | None = None,
) -> web.Response:
    request_id = request_id_of(request)
    if request.method == "HEAD":
        return web.Response(status=status, headers={"x-amz-request-id": request_id})
    return _error_document(status, code, message, request_id, extra or {}, request.path)


# S3 codes of the answers the HTTP server gives before any handler runs (``http.server``).
_PROTOCOL_CODES = {408: "RequestTimeout", 431: "RequestHeaderSectionTooLarge", 503: "SlowDown"}


def protocol_error_response(status: int, message: str) -> web.Response:
    """A request the HTTP server refused on its own (a malformed head, too slow, too many
    connections): S3's XML error body, with a request id of its own."""
    code = _PROTOCOL_CODES.get(status, "BadRequest")
    return _error_document(status, code, message, new_request_id(), {}, None)


def _error_document(
    status: int,
    code: str,
    message: str,
    request_id: str,
    extra: dict[str, str],
    resource: str | None,
) -> web.Response:
    # No namespace, as AWS sends it: botocore finds an error's Code only under a root
    # element named exactly "Error".
    root = ET.Element("Error")
    child(root, "Code", code)
    child(root, "Message", xml_safe(message))
    for tag, text in extra.items():
        child(root, tag, xml_safe(text))
    if resource is not None:
        child(root, "Resource", xml_safe(resource))
    child(root, "RequestId", request_id)
    return xml_response(root, status, {"x-amz-request-id": request_id})


def _details(error: e.DiststorageError) -> dict[str, str]:
    """What S3 adds to an error's body."""
    if isinstance(error, e.SignatureDoesNotMatch):
        return {
            "AWSAccessKeyId": error.access_key_id,
            "StringToSign": error.string_to_sign,
            "CanonicalRequest": error.canonical_request,
        }
    if isinstance(error, e.AuthorizationHeaderMalformed | e.AuthorizationQueryParametersError):
        return {} if error.region is None else {"Region": error.region}
    return {}


def response_for(request: web.Request, error: e.DiststorageError) -> web.Response:
    response = error_response(
        request, s3_status_of(error), error.s3_code, error.message, _details(error)
    )
    add_error_headers(response, error)
    return response


@web.middleware
async def s3_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except e.DiststorageError as error:
        if s3_status_of(error) >= 500:
            log.warning("S3 %s %s → %s: %s", request.method, request.path, error.s3_code, error)
        return response_for(request, error)
    except web.HTTPException as http_error:
        if http_error.status < 400:
            raise
        code = "".join(word.capitalize() for word in http_error.reason.split())
        return error_response(request, http_error.status, code, http_error.reason)
    except Exception:
        log.exception("S3 %s %s failed", request.method, request.path)
        return error_response(request, 500, "InternalError", "the gateway failed; see its log")


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """The request's one id, under S3's name and the native API's."""
    request_id = request_id_of(request)
    response.headers.setdefault("x-amz-request-id", request_id)
    response.headers.setdefault(HEADER, request_id)
    response.headers.setdefault("Server", "diststorage")
