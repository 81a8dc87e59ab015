"""The run's control requests (``/_/nodes``, ``/_/repair``, ``/_/health``), sent to the gateways
that are up: any gateway, the first included, may be killed as a fault, so no control request
is tied to one of them.

Decisions that gate a fault ask every gateway up, and need every one to agree: each gateway
judges liveness on its own heartbeats, and one that was just restarted, or heard a node later,
may see the cluster worse than another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

REQUEST_TIMEOUT_S = 5.0


@dataclass
class Control:
    session: aiohttp.ClientSession
    live_urls: Callable[[], Sequence[str]]

    async def get_json(self, url: str, path: str) -> Any:
        """A JSON answer (200) of the gateway at ``url``; None if it cannot be read now."""
        try:
            timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
            async with self.session.get(f"{url}{path}", timeout=timeout) as answer:
                if answer.status != 200:
                    return None
                return await answer.json(content_type=None)
        except (aiohttp.ClientError, OSError, ValueError, TimeoutError):
            return None

    async def from_each(self, path: str) -> list[Any]:
        """One answer per gateway up now (None where it could not be read); empty if none
        is up."""
        return [await self.get_json(url, path) for url in self.live_urls()]

    async def node_views(self) -> list[dict[str, dict[str, Any]] | None]:
        """Each gateway's node table by address (None where it could not be read)."""
        return [_by_address(body) for body in await self.from_each("/_/nodes")]


def _by_address(body: Any) -> dict[str, dict[str, Any]] | None:
    if not isinstance(body, list):
        return None
    return {str(v.get("address")): v for v in body if isinstance(v, dict)}
