"""A synchronous client of the gateway's HTTP API, on the standard library's ``http.client``.

Two floors. The plain methods (``request``, ``stream``, ``put``, ``get``, ``head``, ``delete``,
``get_streamed``) send one request and hand back the status, headers and bytes exactly as the
gateway sent them, whatever the status: the tests need to see those. The typed methods on top
(``put_file``, ``get_to``, ``stat``, ``list_all``, ``nodes``, ...) answer parsed results and
raise ``ClientError`` for an error status: the CLI uses those.

Every request opens its own connection, so a ``Client`` holds no state between requests, needs
no closing and may be shared by threads. Bodies go out and come in ``PIECE_BYTES`` at a time:
a multi-GiB transfer takes no more memory than a small one.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from email.message import Message
from pathlib import Path
from typing import Any, BinaryIO

from diststorage.client.accounts import AccountsAdmin
from diststorage.client.errors import ClientError
from diststorage.client.response import Response, StreamedGet, StreamingResponse
from diststorage.client.signing import DEFAULT_REGION, signed
from diststorage.client.transport import PIECE_BYTES, Origin, translated
from diststorage.core.credentials import Credentials

Body = bytes | BinaryIO | Iterable[bytes] | None
"""A request body: bytes are sent with their length; a file or an iterable of pieces is sent
chunked unless the caller gives a ``Content-Length`` header."""
Progress = Callable[[int], None]
"""Told the byte count of each piece as it is sent or received."""
LIST_PAGE_LIMIT = 1000


def quote_key(key: str) -> str:
    """The request path of a key: every byte outside the unreserved set and ``/`` encoded."""
    return "/" + urllib.parse.quote(key, safe="/")


class Client:
    """One gateway's HTTP API. ``url`` may carry a path, which every request goes under.

    ``connect_timeout_s`` bounds opening each connection, ``read_timeout_s`` every wait after
    that; a deadline that passes raises ``TransportError``. Raises ``ValueError`` at once for a
    URL that is not http(s) or a timeout that is not positive.

    With ``credentials`` every request is signed (SigV4, for ``region``; see ``signing``);
    without, requests go unsigned, which a gateway takes only when run ``--anonymous``.
    """

    def __init__(
        self,
        url: str,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 300.0,
        credentials: Credentials | None = None,
        region: str = DEFAULT_REGION,
    ) -> None:
        self._origin = Origin(url.rstrip("/"), connect_timeout_s, read_timeout_s)
        self.url = self._origin.url
        self.credentials = credentials
        self.region = region

    @property
    def accounts(self) -> AccountsAdmin:
        """The admin routes for keys, buckets and grants."""
        return AccountsAdmin(self)

    @property
    def host(self) -> str:
        return self._origin.host

    @property
    def port(self) -> int:
        """The gateway's port, the scheme's default when the URL names none."""
        return self._origin.port

    # -- one request, every status handed back -------------------------------------------------

    @contextmanager
    def stream(
        self,
        method: str,
        path: str,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
    ) -> Iterator[StreamingResponse]:
        """Sends the request; yields the answer with its body still unread.

        ``path`` (with any query) is sent as is, so it must be encoded already. The connection
        is closed on the way out, read to its end or not. Raises ``TransportError``.
        """
        sent = dict(headers or {})
        if self.credentials is not None:
            sent = signed(method, self.url + path, body, sent, self.credentials, self.region)
        connection = self._origin.connect()
        try:
            with translated(self.url):
                connection.request(method, self._origin.base_path + path, body=body, headers=sent)
                answer = connection.getresponse()
            yield StreamingResponse(answer, self.url)
        finally:
            connection.close()

    def request(
        self,
        method: str,
        path: str,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
    ) -> Response:
        """Sends the request and reads the whole answer; see ``stream``."""
        with self.stream(method, path, body, headers) as answer:
            return answer.read_whole()

    def put(
        self, key: str, body: Body, headers: Mapping[str, str] | None = None, method: str = "PUT"
    ) -> Response:
        """Stores ``body`` under ``key``; ``method`` POST creates only (409 if the key exists)."""
        return self.request(method, quote_key(key), body, headers)

    def get(self, key: str, headers: Mapping[str, str] | None = None) -> Response:
        return self.request("GET", quote_key(key), None, headers)

    def head(self, key: str, headers: Mapping[str, str] | None = None) -> Response:
        return self.request("HEAD", quote_key(key), None, headers)

    def delete(self, key: str) -> Response:
        return self.request("DELETE", quote_key(key))

    def get_streamed(self, path: str, headers: Mapping[str, str] | None = None) -> StreamedGet:
        """GETs ``path`` (encoded), hashing the body as it streams in instead of keeping it."""
        with self.stream("GET", path, None, headers) as answer:
            return answer.hashed()

    # -- typed: parsed answers, ClientError for an error status ------------------------------

    def put_stream(
        self,
        body: Body,
        key: str,
        headers: Mapping[str, str] | None = None,
        replace: bool = True,
    ) -> dict[str, Any]:
        """Stores ``body`` under ``key`` (failing if it exists unless ``replace``); answers the
        gateway's description of the stored object."""
        created = self.put(key, body, headers, "PUT" if replace else "POST").raise_for_status()
        result: dict[str, Any] = created.json()
        return result

    def put_file(
        self,
        path: Path,
        key: str,
        replace: bool = True,
        redundancy: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        """Uploads the file at ``path`` a piece at a time, with its length; see ``put_stream``."""
        headers = {"Content-Length": str(path.stat().st_size)}
        if redundancy:
            headers["X-Redundancy"] = redundancy
        with path.open("rb") as handle:
            return self.put_stream(_file_pieces(handle, progress), key, headers, replace)

    def get_to(self, key: str, sink: BinaryIO, progress: Progress | None = None) -> dict[str, str]:
        """Streams the object into ``sink``; returns the response headers, names lower-cased.

        Raises ``ClientError`` before writing anything if the gateway answers an error; a
        ``TransportError`` midway leaves ``sink`` holding part of the object.
        """
        with self.stream("GET", quote_key(key)) as answer:
            if answer.status >= 400:
                raise answer.read_whole().error()
            for piece in answer.pieces():
                sink.write(piece)
                if progress:
                    progress(len(piece))
            return _lowered(answer.headers)

    def stat(self, key: str) -> dict[str, str]:
        """The object's headers (names lower-cased), from a HEAD; ``not_found`` for a 404."""
        response = self.head(key)
        if response.status >= 400:
            code = "not_found" if response.status == 404 else "http_error"
            raise ClientError(response.status, code, f"HEAD {key}: {response.reason}")
        return _lowered(response.headers)

    def list_page(
        self, prefix: str = "", after: str = "", limit: int | None = None
    ) -> dict[str, Any]:
        """One page of the listing: keys under ``prefix`` that sort after ``after``."""
        query = {"prefix": prefix, "after": after, "limit": "" if limit is None else str(limit)}
        sent = urllib.parse.urlencode({name: value for name, value in query.items() if value})
        return self._json("GET", f"/?{sent}" if sent else "/")

    def list_all(self, prefix: str = "", limit: int = LIST_PAGE_LIMIT) -> Iterator[dict[str, Any]]:
        """Every object under ``prefix``, in key order, fetching ``limit`` at a time."""
        after = ""
        while True:
            page = self.list_page(prefix, after, limit)
            yield from page["objects"]
            if not page["truncated"]:
                return
            after = page["next_after"]

    def list_keys(self, prefix: str = "", limit: int = LIST_PAGE_LIMIT) -> list[str]:
        """Every key under ``prefix``, in key order."""
        return [entry["key"] for entry in self.list_all(prefix, limit)]

    def nodes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/_/nodes").raise_for_status().json()
        return result

    def repair(self) -> dict[str, Any]:
        return self._json("GET", "/_/repair")

    def set_node_lifecycle(self, node_id: str, action: str) -> dict[str, Any]:
        """``action`` is ``drain``, ``activate`` or ``accept`` (admit a pending node);
        answers the node's new entry."""
        return self._json("POST", f"/_/nodes/{_quoted(node_id)}/{_quoted(action)}")

    def remove_node(self, node_id: str, force: bool = False) -> None:
        query = "?force=true" if force else ""
        self.request("DELETE", f"/_/nodes/{_quoted(node_id)}{query}").raise_for_status()

    def rebalance(self) -> dict[str, Any]:
        return self._json("POST", "/_/rebalance")

    def health(self) -> tuple[int, dict[str, Any]]:
        """The health report with its status (200, or 503 when writes cannot be placed);
        raises ``ValueError`` if the answer is not JSON."""
        response = self.request("GET", "/_/health")
        payload: dict[str, Any] = response.json()
        return response.status, payload

    def _json(self, method: str, path: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request(method, path).raise_for_status().json()
        return result


def _quoted(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _lowered(headers: Message) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _file_pieces(handle: BinaryIO, progress: Progress | None) -> Iterator[bytes]:
    while piece := handle.read(PIECE_BYTES):
        if progress:
            progress(len(piece))
        yield piece
