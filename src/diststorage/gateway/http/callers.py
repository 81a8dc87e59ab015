"""Who sent a request, once a front end's guard has admitted it, and the request's body as
verified against what the sender signed (its sha256, or nothing for an unsigned payload)."""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from diststorage.gateway.auth.body import BodyChecks, VerifyingBody, wrap_body
from diststorage.gateway.auth.ports import Caller, Principal
from diststorage.gateway.http.body import RequestBody
from diststorage.s3auth.checksums import ChecksumAlgorithm

CALLER: web.RequestKey[Caller] = web.RequestKey("caller", Caller)


def set_caller(request: web.Request, caller: Caller) -> None:
    request[CALLER] = caller


def caller_of(request: web.Request) -> Principal | None:
    """The verified sender's principal; None for an unauthenticated (anonymous) request."""
    caller = request.get(CALLER)
    return None if caller is None else caller.principal


def request_body(
    request: web.Request,
    declared_size: int | None,
    max_bytes: int,
    extra_checksums: Collection[ChecksumAlgorithm] = (),
    max_raw_bytes: int | None = None,
) -> tuple[VerifyingBody, BodyChecks]:
    """The body, decoded (aws-chunked) and checked as it is read against what was signed and
    the checksums sent (see ``wrap_body``): the last read raises when it does not match,
    before the pipelines commit. ``declared_size`` is the raw body's length. ``max_bytes``
    bounds the decoded bytes; ``max_raw_bytes`` (default ``max_bytes``) the bytes received,
    which aws-chunked framing makes more than the object's."""
    caller = request.get(CALLER)
    raw = RequestBody(request, declared_size, max_bytes if max_raw_bytes is None else max_raw_bytes)
    verified = None if caller is None else caller.verified
    return wrap_body(raw, verified, request.headers, max_bytes, extra_checksums)
