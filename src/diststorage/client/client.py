"""An asyncio client of the gateway's HTTP API. Transfers stream: memory stays flat."""

from __future__ import annotations

import urllib.parse
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp

PIECE_BYTES = 1 << 20
Progress = Callable[[int], None]


class ClientError(Exception):
    """The gateway answered with an error, or could not be reached."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


def _lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def quote_key(key: str) -> str:
    return urllib.parse.quote(key, safe="/")


async def _raise_for(response: aiohttp.ClientResponse) -> None:
    if response.status < 400:
        return
    try:
        body = await response.json(content_type=None)
        code, message = str(body["error"]), str(body["message"])
    except (ValueError, KeyError, TypeError, aiohttp.ContentTypeError):
        code, message = "http_error", response.reason or ""
    raise ClientError(response.status, code, message)


class Client:
    def __init__(self, url: str, timeout_s: float = 300.0) -> None:
        self._base = url.rstrip("/")
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=timeout_s)
        )

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._session.close()

    def _url(self, key: str) -> str:
        return f"{self._base}/{quote_key(key)}"

    async def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            async with self._session.request(method, self._base + path, **kwargs) as response:
                await _raise_for(response)
                if response.status == 204:
                    return None
                return await response.json()
        except aiohttp.ClientConnectionError as exc:
            raise ClientError(0, "unreachable", f"{self._base}: {exc}") from exc

    async def put_file(
        self,
        path: Path,
        key: str,
        replace: bool = True,
        redundancy: str | None = None,
        progress: Progress | None = None,
    ) -> dict[str, Any]:
        headers = {"Content-Length": str(path.stat().st_size)}
        if redundancy:
            headers["X-Redundancy"] = redundancy
        with path.open("rb") as handle:
            return await self.put_stream(_file_pieces(handle, progress), key, headers, replace)

    async def put_stream(
        self,
        body: AsyncIterator[bytes] | bytes,
        key: str,
        headers: dict[str, str] | None = None,
        replace: bool = True,
    ) -> dict[str, Any]:
        method = "PUT" if replace else "POST"
        try:
            async with self._session.request(
                method, self._url(key), data=body, headers=headers or {}
            ) as response:
                await _raise_for(response)
                result: dict[str, Any] = await response.json()
                return result
        except aiohttp.ClientConnectionError as exc:
            raise ClientError(0, "unreachable", f"{self._base}: {exc}") from exc

    async def get_to(
        self, key: str, sink: BinaryIO, progress: Progress | None = None
    ) -> dict[str, str]:
        """Streams the object into ``sink``; returns the response headers, names lower-cased."""
        try:
            async with self._session.get(self._url(key)) as response:
                await _raise_for(response)
                async for piece in response.content.iter_chunked(PIECE_BYTES):
                    sink.write(piece)
                    if progress:
                        progress(len(piece))
                return _lowered(response.headers)
        except aiohttp.ClientConnectionError as exc:
            raise ClientError(0, "unreachable", f"{self._base}: {exc}") from exc

    async def stat(self, key: str) -> dict[str, str]:
        try:
            async with self._session.head(self._url(key)) as response:
                if response.status >= 400:
                    raise ClientError(
                        response.status,
                        "not_found" if response.status == 404 else "http_error",
                        f"HEAD {key}: {response.reason}",
                    )
                return _lowered(response.headers)
        except aiohttp.ClientConnectionError as exc:
            raise ClientError(0, "unreachable", f"{self._base}: {exc}") from exc

    async def delete(self, key: str) -> None:
        try:
            async with self._session.delete(self._url(key)) as response:
                await _raise_for(response)
        except aiohttp.ClientConnectionError as exc:
            raise ClientError(0, "unreachable", f"{self._base}: {exc}") from exc

    async def list_page(
        self, prefix: str = "", after: str = "", limit: int = 1000
    ) -> dict[str, Any]:
        params = {"prefix": prefix, "after": after, "limit": str(limit)}
        result: dict[str, Any] = await self._request("GET", "/", params=params)
        return result

    async def list_all(self, prefix: str = "") -> AsyncIterator[dict[str, Any]]:
        after = ""
        while True:
            page = await self.list_page(prefix, after)
            for item in page["objects"]:
                yield item
            if not page["truncated"]:
                return
            after = page["next_after"]

    async def nodes(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._request("GET", "/_/nodes")
        return result

    async def repair(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("GET", "/_/repair")
        return result

    async def set_node_lifecycle(self, node_id: str, action: str) -> dict[str, Any]:
        """``action`` is ``drain`` or ``activate``; answers the node's new entry."""
        result: dict[str, Any] = await self._request("POST", f"/_/nodes/{node_id}/{action}")
        return result

    async def remove_node(self, node_id: str, force: bool = False) -> None:
        query = "?force=true" if force else ""
        await self._request("DELETE", f"/_/nodes/{node_id}{query}")

    async def rebalance(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._request("POST", "/_/rebalance")
        return result

    async def health(self) -> tuple[int, dict[str, Any]]:
        try:
            async with self._session.get(self._base + "/_/health") as response:
                return response.status, await response.json()
        except aiohttp.ClientConnectionError as exc:
            raise ClientError(0, "unreachable", f"{self._base}: {exc}") from exc


async def _file_pieces(handle: BinaryIO, progress: Progress | None) -> AsyncIterator[bytes]:
    while piece := handle.read(PIECE_BYTES):
        if progress:
            progress(len(piece))
        yield piece
