"""The Objects screen (``/_/ui/objects``): the buckets, then a bucket's keys one folder at a
time (delimiter ``/``), a page at a time.

A page is one S3-style listing (``MetadataStore.list_keys``): a folder of a million keys costs
an index seek, never a scan, and the next page starts where this one ended (the listing's
``next_start_after``, handed back as ``after``), so no page costs more than its own entries.
Keys are data, never paths: every key, prefix and bucket travels in the query string,
percent-encoded, and reaches the page through autoescaping. The object page is ``object_page``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from diststorage.core.errors import ObjectNotFound
from diststorage.gateway.api.object_layout import query_number
from diststorage.gateway.dashboard import object_page
from diststorage.gateway.dashboard.context import Screen, dashboard_of, render_page
from diststorage.gateway.dashboard.object_links import (
    bounded_text,
    listing_url,
    object_url,
    prefix_crumbs,
)
from diststorage.meta import DEFAULT_NAMESPACE, MAX_LIST_LIMIT, KeyPage

DELIMITER = "/"
DEFAULT_ENTRIES_PER_PAGE = 100


@dataclass(frozen=True, slots=True)
class ListingQuery:
    bucket: str
    prefix: str = ""
    after: str = ""
    limit: int = DEFAULT_ENTRIES_PER_PAGE


def parse_listing_query(query: Mapping[str, str]) -> ListingQuery | None:
    """None with neither a bucket nor a prefix (the bucket list); a prefix alone lists the
    native API's bucket. Raises InvalidRequest for a bad page."""
    bucket = bounded_text(query, "bucket")
    if not bucket and "prefix" not in query:
        return None
    return ListingQuery(
        bucket=bucket or DEFAULT_NAMESPACE,
        prefix=bounded_text(query, "prefix"),
        after=bounded_text(query, "after"),
        limit=query_number(query, "limit", 1, MAX_LIST_LIMIT, DEFAULT_ENTRIES_PER_PAGE),
    )


async def objects_page(request: web.Request) -> web.Response:
    listing = parse_listing_query(request.query)
    if listing is None:
        return await _bucket_list(request)
    services = dashboard_of(request).services
    try:
        page = await services.store.list_keys(
            listing.bucket, listing.prefix, DELIMITER, listing.after, listing.limit
        )
    except ObjectNotFound:
        context = {"bucket": listing.bucket, "buckets_href": listing_url()}
        return await render_page(
            request, "objects_missing.html", context, screen="objects", status=404
        )
    return await render_page(
        request, "objects.html", listing_context(listing, page), screen="objects"
    )


async def _bucket_list(request: web.Request) -> web.Response:
    buckets = await dashboard_of(request).services.accounts.store.list_buckets()
    rows = [
        {
            "name": b.name,
            "href": listing_url(b.name),
            "created_at": None if b.created_at is None else b.created_at.isoformat(),
            "owner": b.owner_key_id,
            "native": b.name == DEFAULT_NAMESPACE,
        }
        for b in buckets
    ]
    return await render_page(request, "buckets.html", {"buckets": rows}, screen="objects")


def listing_context(listing: ListingQuery, page: KeyPage) -> dict[str, Any]:
    """What ``objects.html`` renders: folders and objects in one key order, and the pager."""
    entries: list[tuple[bytes, dict[str, Any]]] = []
    for folder in page.common_prefixes:
        entries.append(
            (
                folder.encode(),
                {
                    "kind": "folder",
                    "name": _relative(folder, listing.prefix),
                    "key": folder,
                    "href": listing_url(listing.bucket, folder),
                },
            )
        )
    for info in page.objects:
        entries.append(
            (
                info.key.encode(),
                {
                    "kind": "object",
                    "name": _relative(info.key, listing.prefix),
                    "key": info.key,
                    "href": object_url(listing.bucket, info.key),
                    "size": info.size_bytes,
                    "redundancy": info.policy,
                    "etag": f'"{info.etag}"',
                    "last_modified": info.created_at.isoformat(),
                },
            )
        )
    entries.sort(key=lambda entry: entry[0])
    following = page.next_start_after if page.truncated else None
    return {
        "bucket": listing.bucket,
        "prefix": listing.prefix,
        "crumbs": prefix_crumbs(listing.bucket, listing.prefix),
        "entries": [entry for _, entry in entries],
        "folders": len(page.common_prefixes),
        "objects": len(page.objects),
        "first_page": not listing.after,
        "first_href": listing_url(listing.bucket, listing.prefix, limit=listing.limit),
        "next_href": None
        if following is None
        else listing_url(listing.bucket, listing.prefix, following, listing.limit),
        "buckets_href": listing_url(),
    }


def _relative(key: str, prefix: str) -> str:
    """The key as shown inside its folder; the whole key when it is the prefix itself."""
    return key[len(prefix) :] or key


def add_routes(app: web.Application) -> None:
    app.router.add_get("/objects", objects_page)
    object_page.add_routes(app)


SCREEN = Screen("objects", "Objects", "/objects", add_routes)
