"""The Objects screen's URLs: every bucket, prefix and key in the query string, percent-encoded
(spaces as ``%20``, ``+`` as ``%2B``), never in the path, where ``/../`` or ``%2F`` would mean
something to a router or a proxy. Templates get these URLs whole and autoescape them."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

from diststorage.core.errors import InvalidRequest
from diststorage.gateway.api.parse import MAX_KEY_BYTES
from diststorage.gateway.dashboard.context import ui_url

LISTING_PATH = "/objects"
OBJECT_PATH = "/objects/object"
GRID_PATH = "/objects/object/grid"
# A key, a prefix or a continuation token is at most a key long; a bucket name is shorter.
MAX_QUERY_TEXT_BYTES = MAX_KEY_BYTES


def _url(path: str, params: Mapping[str, str | int | None]) -> str:
    given = {name: str(value) for name, value in params.items() if value not in (None, "")}
    query = urllib.parse.urlencode(given, quote_via=urllib.parse.quote)
    return ui_url(path) + (f"?{query}" if query else "")


def listing_url(
    bucket: str | None = None, prefix: str = "", after: str | None = None, limit: int | None = None
) -> str:
    """The bucket list (no bucket), or a page of a bucket's keys under ``prefix``."""
    return _url(LISTING_PATH, {"bucket": bucket, "prefix": prefix, "after": after, "limit": limit})


def object_url(bucket: str, key: str, start: int | None = None, limit: int | None = None) -> str:
    return _url(OBJECT_PATH, {"bucket": bucket, "key": key, "start": start, "limit": limit})


def grid_url(bucket: str, key: str, start: int | None = None, limit: int | None = None) -> str:
    """The segment grid of the object page alone (what its pager swaps in)."""
    return _url(GRID_PATH, {"bucket": bucket, "key": key, "start": start, "limit": limit})


def bounded_text(query: Mapping[str, str], name: str) -> str:
    """A query parameter ("" when absent); raises InvalidRequest past a key's length."""
    value = query.get(name, "")
    if len(value.encode("utf-8", "surrogatepass")) > MAX_QUERY_TEXT_BYTES:
        raise InvalidRequest(f"{name} is at most {MAX_QUERY_TEXT_BYTES} bytes")
    return value


def prefix_crumbs(bucket: str, prefix: str) -> list[tuple[str, str]]:
    """(label, URL) of the bucket and of each folder down to ``prefix``: ``a/b/`` gives
    ``bucket``, ``a/``, ``b/``; a prefix not ending in ``/`` ends with its last piece."""
    crumbs = [(bucket, listing_url(bucket))]
    start = 0
    while start < len(prefix):
        end = prefix.find("/", start)
        end = len(prefix) if end < 0 else end + 1
        crumbs.append((prefix[start:end], listing_url(bucket, prefix[:end])))
        start = end
    return crumbs


def parent_prefix(key: str) -> str:
    """The folder a key is listed in: everything up to its last ``/``."""
    cut = key.rfind("/")
    return key[: cut + 1] if cut >= 0 else ""
