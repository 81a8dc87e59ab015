"""SigV4 for aiohttp client sessions: what in-process tests and the benchmarks' aiohttp
clients use to talk to a gateway that takes signed requests only.

A client middleware signs each request as it leaves, with an unsigned payload (the body may
be a stream) and the ``host`` and ``x-amz-*`` headers signed.
"""

from __future__ import annotations

import aiohttp

from diststorage.core.credentials import Credentials
from diststorage.s3auth.signer import sign_request

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def sigv4_middleware(
    credentials: Credentials, region: str = "us-east-1"
) -> aiohttp.ClientMiddlewareType:
    """A middleware for ``aiohttp.ClientSession(middlewares=[...])``."""

    async def sign(
        request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        signed = {
            name.lower(): value
            for name, value in request.headers.items()
            if name.lower() == "host" or name.lower().startswith("x-amz-")
        }
        added = sign_request(
            request.method,
            str(request.url),
            signed,
            UNSIGNED_PAYLOAD,
            credentials.access_key_id,
            credentials.secret_access_key,
            region,
        )
        request.headers.update(added)
        return await handler(request)

    return sign
