"""Sending an object's bytes as they are read, for every front end.

The first piece is fetched before the status goes out, so that an object that cannot be read
at all gets an error answer, not a truncated body. Once the status line is gone, a failure can
only cut the connection short: the one way left to tell the client that what it got is not
the whole object. However the sending ends, the read stream is closed at once, which stops
its fetches.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from aiohttp import web

from diststorage.core.errors import DiststorageError
from diststorage.gateway.http.access import ANSWER_SENT
from diststorage.gateway.objects.reader import Piece
from diststorage.gateway.objects.streamed_body import close_stream

log = logging.getLogger(__name__)


async def send_stream(
    request: web.Request, response: web.StreamResponse, pieces: AsyncIterator[Piece], what: str
) -> None:
    """``what`` names the object in the log line of a failure after the status."""
    try:
        first = await anext(pieces, b"")
        await response.prepare(request)
        try:
            if first:
                await response.write(first)
            async for piece in pieces:
                await response.write(piece)
        except DiststorageError as error:
            log.error("GET %s failed after %s: %s", what, response.status, error)
            if request.transport is not None:
                request.transport.abort()
            return
        request[ANSWER_SENT] = response
        await response.write_eof()
    finally:
        await close_stream(pieces)
