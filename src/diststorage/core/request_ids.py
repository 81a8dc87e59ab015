"""One id per client request, carried wherever the request's work goes.

The gateway takes the id a client (or a load balancer: haproxy's ``unique-id-format``) sent in
``X-Request-Id`` when it is a short token of ``[A-Za-z0-9._-]``, and makes one otherwise: the
id ends up in log lines, response headers and error bodies, so nothing that could break a log
line or a header (spaces, quotes, control characters, kilobytes) is ever taken from outside.
The id lives in a context variable: asyncio copies it into every task the request starts
(the read pipeline's fetchers, the janitor's deletes), the gateway sends it to nodes as gRPC
metadata ``x-request-id``, and a node sets it again for the call it serves.
"""

from __future__ import annotations

import random
import re
from contextvars import ContextVar

HEADER = "X-Request-Id"
GRPC_METADATA_KEY = "x-request-id"  # gRPC metadata keys are lowercase
MAX_CHARS = 64

_ACCEPTED = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_CHARS}}}")

current_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
"""The id of the request whose work runs now; None outside any request (background work)."""


def new_request_id() -> str:
    """16 uppercase hex digits, the shape of S3's ``x-amz-request-id``. An id tells requests
    apart and guards nothing, so it comes from ``random`` (seeded from the OS, and again in
    a forked child), not from a UUID4's system call and object on every request."""
    return f"{random.getrandbits(64):016X}"


def is_acceptable(candidate: str) -> bool:
    # fullmatch: "$" would also accept a final newline.
    return _ACCEPTED.fullmatch(candidate) is not None


def accepted_or_new(candidate: str | None) -> str:
    """The client's id when it is acceptable, otherwise a new one."""
    if candidate is not None and is_acceptable(candidate):
        return candidate
    return new_request_id()


def grpc_metadata() -> tuple[tuple[str, str], ...] | None:
    """The metadata a call to a node carries: the current request's id, if any."""
    request_id = current_request_id.get()
    return None if request_id is None else ((GRPC_METADATA_KEY, request_id),)
