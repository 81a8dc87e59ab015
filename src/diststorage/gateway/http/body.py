"""The HTTP request body as a ByteSource; aiohttp's errors end here.

A body that sends nothing for the app's ``BODY_IDLE_TIMEOUT_S`` raises ``RequestTimeout``:
the pipelines roll the upload back as for any body error, so a client that stalls cannot hold
the nodes' reservations, temp files or the upload's slot for longer than that.
"""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from diststorage.core.errors import (
    BodyLengthMismatch,
    ClientGone,
    PayloadTooLarge,
    RequestTimeout,
)

# Set on each front end's app by the composition root (settings.body_idle_timeout_s).
BODY_IDLE_TIMEOUT_S: web.AppKey[float] = web.AppKey("body_idle_timeout_s", float)
DEFAULT_BODY_IDLE_TIMEOUT_S = 30.0


class RequestBody:
    """Reads the body a stripe at a time, copying each byte once.

    ``readany`` hands over aiohttp's buffered pieces as they are; ``read(n)`` would instead
    raise aiohttp's read-ahead to 2n (4 MiB for a 2 MiB stripe) and join what it holds
    before we copy it again.
    """

    def __init__(self, request: web.Request, declared_size: int | None, max_bytes: int) -> None:
        self._content = request.content
        self._idle_timeout_s = request.config_dict.get(
            BODY_IDLE_TIMEOUT_S, DEFAULT_BODY_IDLE_TIMEOUT_S
        )
        self._declared = declared_size
        self._max_bytes = max_bytes
        # What the last piece held beyond the previous read's size.
        self._leftover: memoryview | None = None
        self.received = 0

    async def read_up_to(self, size: int) -> bytes:
        pieces: list[bytes | memoryview] = []
        have = 0
        if self._leftover is not None:
            pieces.append(self._leftover)
            have = len(self._leftover)
            self._leftover = None
        ended = False
        while have < size:
            piece = await self._next_piece()
            if not piece:
                ended = True
                break
            pieces.append(piece)
            have += len(piece)
        if have > size:
            last = memoryview(pieces[-1])
            keep = len(last) - (have - size)
            pieces[-1], self._leftover = last[:keep], last[keep:]
            have = size
        self.received += have
        if self.received > self._max_bytes:
            raise PayloadTooLarge(f"the body exceeds the {self._max_bytes}-byte object limit")
        if ended and self._declared is not None and self.received != self._declared:
            raise BodyLengthMismatch(
                f"Content-Length announced {self._declared} bytes, the body had {self.received}"
            )
        return b"".join(pieces)

    async def _next_piece(self) -> bytes:
        try:
            async with asyncio.timeout(self._idle_timeout_s):
                return await self._content.readany()
        except TimeoutError:
            raise RequestTimeout(
                f"the body sent nothing for {self._idle_timeout_s:g} s; the upload is dropped"
            ) from None
        except (aiohttp.ClientConnectionError, ConnectionError) as exc:
            raise ClientGone("the client disconnected during the upload") from exc
        except aiohttp.ClientPayloadError as exc:
            raise BodyLengthMismatch(f"the body ended early: {exc}") from exc
        except aiohttp.http_exceptions.HttpProcessingError as exc:
            raise BodyLengthMismatch(f"the body is malformed: {exc.message}") from exc
