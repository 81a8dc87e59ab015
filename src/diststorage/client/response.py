"""What a request answers: a ``Response`` read whole, or a ``StreamingResponse`` read in pieces."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import Message
from http.client import HTTPResponse
from typing import Any

from diststorage.client.errors import ClientError
from diststorage.client.transport import PIECE_BYTES, translated


@dataclass
class Response:
    """The status, headers and body exactly as the gateway sent them; never raises for a status."""

    status: int
    headers: Message
    body: bytes
    reason: str = ""

    def header(self, name: str) -> str | None:
        """The header's value (names are case-insensitive), or None when it was not sent."""
        return self.headers.get(name)

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` if it is not JSON."""
        return json.loads(self.body)

    def error(self) -> ClientError:
        """This (error) response as a ``ClientError``, with the code and message of the
        gateway's JSON error body, or ``http_error`` and the reason phrase without one."""
        try:
            payload = self.json()
            code, message = str(payload["error"]), str(payload["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", self.reason
        return ClientError(self.status, code, message)

    def raise_for_status(self) -> Response:
        """Returns the response itself when its status is below 400, else raises ``error()``."""
        if self.status >= 400:
            raise self.error()
        return self


@dataclass
class StreamedGet:
    """A download whose body was hashed while it streamed in, never held whole."""

    status: int
    headers: Message
    md5: str
    size: int


class StreamingResponse:
    """A response whose body has not been read yet; valid inside ``Client.stream`` only.

    ``read`` and ``pieces`` raise ``TransportError`` if the connection breaks or the read
    deadline passes meanwhile.
    """

    def __init__(self, answer: HTTPResponse, origin: str) -> None:
        self._answer = answer
        self._origin = origin
        self.status = answer.status
        self.headers: Message = answer.headers
        self.reason = answer.reason

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def read(self, size_bytes: int | None = None) -> bytes:
        """Up to ``size_bytes`` of the body (all that is left when None); b"" at its end."""
        with translated(self._origin):
            return self._answer.read(size_bytes)

    def pieces(self, piece_bytes: int = PIECE_BYTES) -> Iterator[bytes]:
        """The rest of the body, ``piece_bytes`` at most at a time."""
        while piece := self.read(piece_bytes):
            yield piece

    def read_whole(self) -> Response:
        """The rest of the body, read into a ``Response``."""
        return Response(self.status, self.headers, self.read(), self.reason)

    def hashed(self) -> StreamedGet:
        """The rest of the body's MD5 and size, read a piece at a time."""
        digest = hashlib.md5(usedforsecurity=False)
        size = 0
        for piece in self.pieces():
            digest.update(piece)
            size += len(piece)
        return StreamedGet(self.status, self.headers, digest.hexdigest(), size)
