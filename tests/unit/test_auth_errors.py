"""The authentication errors: their HTTP statuses in the native API's one table, their S3
codes, and a native error body that never shows what was signed."""

from __future__ import annotations

import inspect
import json

import pytest

from diststorage.core import errors as e
from diststorage.gateway.api.errors import response_for
from diststorage.gateway.http.status import status_of


@pytest.mark.parametrize(
    ("error", "status", "s3_code"),
    [
        (e.AccessDenied("no"), 403, "AccessDenied"),
        (e.SignatureDoesNotMatch("no"), 403, "SignatureDoesNotMatch"),
        (e.InvalidAccessKeyId("no"), 403, "InvalidAccessKeyId"),
        (e.RequestTimeTooSkewed("no"), 403, "RequestTimeTooSkewed"),
        (e.RequestExpired("Request has expired"), 403, "AccessDenied"),
        (
            e.AuthorizationHeaderMalformed("no", region="us-east-1"),
            400,
            "AuthorizationHeaderMalformed",
        ),
        (e.AuthorizationQueryParametersError("no"), 400, "AuthorizationQueryParametersError"),
        (e.XAmzContentSHA256Mismatch("no"), 400, "XAmzContentSHA256Mismatch"),
        (e.BadDigest("no"), 400, "BadDigest"),
        (e.InvalidDigest("no"), 400, "InvalidDigest"),
        (e.IncompleteBody("no"), 400, "IncompleteBody"),
        (e.MalformedTrailer("no"), 400, "MalformedTrailerError"),
        (e.UnsupportedSignature("no"), 501, "NotImplemented"),
        (e.InvalidRequest("no"), 400, "InvalidRequest"),
        (e.ObjectNotFound("no"), 404, "NoSuchKey"),
        (e.PayloadTooLarge("no"), 413, "EntityTooLarge"),
        (e.RangeNotSatisfiable("no", 10), 416, "InvalidRange"),
        (e.LengthRequired("no"), 411, "MissingContentLength"),
        (e.MethodNotAllowed("no"), 405, "MethodNotAllowed"),
        (e.NodeUnavailable("no"), 503, "ServiceUnavailable"),
        (e.NotEnoughNodes("no"), 503, "SlowDown"),
        (e.PreconditionFailed("no"), 412, "PreconditionFailed"),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, Exception) else str(value),
)
def test_each_error_has_its_status_and_s3_code(
    error: e.DiststorageError, status: int, s3_code: str
) -> None:
    assert (status_of(error), error.s3_code) == (status, s3_code)


def test_every_error_class_has_an_s3_code_and_a_snake_case_code() -> None:
    classes = [
        c for _, c in inspect.getmembers(e, inspect.isclass) if issubclass(c, e.DiststorageError)
    ]
    assert len(classes) > 30
    for kind in classes:
        assert kind.s3_code and kind.s3_code[0].isupper(), kind
        assert kind.code == kind.code.lower() and " " not in kind.code, kind


def test_the_native_error_body_never_shows_what_was_signed() -> None:
    error = e.SignatureDoesNotMatch(
        "The request signature we calculated does not match",
        string_to_sign="AWS4-HMAC-SHA256\n20130524T000000Z\nscope\nabc",
        canonical_request="GET\n/bucket/key\n\nhost:h\n\nhost\nUNSIGNED-PAYLOAD",
        access_key_id="DSKEY",
    )
    response = response_for(error, "REQ-1")
    assert response.status == 403
    assert response.body is not None
    body = json.loads(bytes(response.body))  # type: ignore[arg-type]
    assert body == {
        "error": "signature_does_not_match",
        "message": "The request signature we calculated does not match",
        "request_id": "REQ-1",
    }
