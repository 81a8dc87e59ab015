"""Connections to the gateway, each with its deadlines, and the one place where the standard
library's network errors become ``TransportError``."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTP_PORT, HTTPS_PORT, HTTPConnection, HTTPException, HTTPSConnection

from diststorage.client.errors import TransportError

PIECE_BYTES = 1 << 20
"""How much of a body is read or sent at a time: memory stays flat whatever the size."""


@contextmanager
def translated(origin: str) -> Iterator[None]:
    """Raises ``TransportError`` (naming ``origin``) from whatever the network raised.

    ``OSError`` covers refused and reset connections and ``TimeoutError`` (a passed deadline);
    ``HTTPException`` covers a connection closed mid-answer or an answer that is not HTTP.
    """
    try:
        yield
    except (OSError, HTTPException) as exc:
        raise TransportError(f"{origin}: {str(exc) or type(exc).__name__}") from exc


@dataclass(frozen=True)
class Origin:
    """Where the gateway is and how long a request may wait on it.

    ``connect_timeout_s`` bounds opening the connection; ``read_timeout_s`` bounds every single
    wait after that (a send, or a read of the next piece of the answer), so a transfer of any
    length goes on as long as it keeps moving.
    """

    url: str
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {self.url!r}")
        _ = parts.port  # raises ValueError for a port that is not a number in range
        if parts.query or parts.fragment:
            raise ValueError(f"a gateway URL has no query or fragment: {self.url!r}")
        if self.connect_timeout_s <= 0 or self.read_timeout_s <= 0:
            raise ValueError("timeouts must be positive")

    @property
    def host(self) -> str:
        return urllib.parse.urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        parts = urllib.parse.urlsplit(self.url)
        if parts.port is not None:
            return parts.port
        return HTTPS_PORT if parts.scheme == "https" else HTTP_PORT

    @property
    def base_path(self) -> str:
        """The URL's path without its trailing slash: requests' paths go after it."""
        return urllib.parse.urlsplit(self.url).path.rstrip("/")

    def connect(self) -> HTTPConnection:
        """A new, open connection; raises ``TransportError`` if it cannot be made in time."""
        secure = urllib.parse.urlsplit(self.url).scheme == "https"
        kind = HTTPSConnection if secure else HTTPConnection
        connection = kind(
            self.host,
            self.port,
            timeout=self.connect_timeout_s,
            blocksize=PIECE_BYTES,
        )
        with translated(self.url):
            connection.connect()
        assert connection.sock is not None
        connection.sock.settimeout(self.read_timeout_s)
        return connection
