"""The dashboard's static files, served under names that carry their content's hash.

A name that changes whenever the bytes do can be cached for a year (``immutable``): a new
release serves new names, and no browser keeps a stale script. The files are small (the
largest is htmx, 52 KB) and read once when the dashboard is built.
"""

from __future__ import annotations

import hashlib
import mimetypes
from pathlib import Path

from aiohttp import web

STATIC_DIR = Path(__file__).parent / "static"
CACHE_FOREVER = "public, max-age=31536000, immutable"
_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


def _versioned(relative: str, body: bytes) -> str:
    """``vendor/htmx.min.js`` → ``vendor/htmx.min.3f2a9c1d07.js``."""
    stem, dot, suffix = relative.rpartition(".")
    digest = hashlib.sha256(body).hexdigest()[:10]
    return f"{stem}.{digest}.{suffix}" if dot else f"{relative}.{digest}"


class StaticAssets:
    """Every file under ``static/``: its versioned URL, and the answer for that URL."""

    def __init__(self, url_prefix: str, directory: Path = STATIC_DIR) -> None:
        self._url_prefix = url_prefix
        self._urls: dict[str, str] = {}
        self._files: dict[str, tuple[bytes, str]] = {}
        for path in sorted(directory.rglob("*")):
            if not path.is_file():
                continue
            relative = path.relative_to(directory).as_posix()
            body = path.read_bytes()
            versioned = _versioned(relative, body)
            content_type = _TYPES.get(path.suffix) or (
                mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            )
            self._urls[relative] = f"{url_prefix}/{versioned}"
            self._files[versioned] = (body, content_type)

    def url(self, relative: str) -> str:
        """The URL of ``static/<relative>``; KeyError for a file that is not there (a
        template naming a missing file fails when rendered, not in a browser)."""
        return self._urls[relative]

    async def handle(self, request: web.Request) -> web.Response:
        found = self._files.get(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, content_type = found
        return web.Response(
            body=body,
            content_type=content_type,
            charset="utf-8" if content_type.startswith("text/") else None,
            headers={"Cache-Control": CACHE_FOREVER},
        )
