"""The HTTP request body as a ByteSource; aiohttp's errors end here."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from diststorage.core.errors import BodyLengthMismatch, ClientGone, PayloadTooLarge


class RequestBody:
    def __init__(self, request: web.Request, declared_size: int | None, max_bytes: int) -> None:
        self._content = request.content
        self._declared = declared_size
        self._max_bytes = max_bytes
        self.received = 0

    async def read_up_to(self, size: int) -> bytes:
        buffer = bytearray()
        ended = False
        while len(buffer) < size:
            try:
                piece = await self._content.read(size - len(buffer))
            except (aiohttp.ClientConnectionError, ConnectionError) as exc:
                raise ClientGone("the client disconnected during the upload") from exc
            except aiohttp.ClientPayloadError as exc:
                raise BodyLengthMismatch(f"the body ended early: {exc}") from exc
            except aiohttp.http_exceptions.HttpProcessingError as exc:
                raise BodyLengthMismatch(f"the body is malformed: {exc.message}") from exc
            if not piece:
                ended = True
                break
            buffer += piece
        self.received += len(buffer)
        if self.received > self._max_bytes:
            raise PayloadTooLarge(f"the body exceeds the {self._max_bytes}-byte object limit")
        if ended and self._declared is not None and self.received != self._declared:
            raise BodyLengthMismatch(
                f"Content-Length announced {self._declared} bytes, the body had {self.received}"
            )
        return bytes(buffer)
