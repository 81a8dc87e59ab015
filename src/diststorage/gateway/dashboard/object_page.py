"""The object page (``/_/ui/objects/object?bucket=&key=``): the object's metadata and its
segment × shard grid, each cell the shard's index, its node and its state in words (colour
only repeats them), with the spare nodes of each segment; a page of segments at a time.

Rendered from the very dict ``GET /_/objects/{key}/layout`` answers (``api.object_layout``),
so the page and the JSON cannot disagree. The grid is a partial (``_object_grid.html``), also
served alone (``/objects/object/grid``) for the pager to swap in without reloading the page;
the pager's links work as plain links too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from diststorage.core.errors import InvalidKey, ObjectNotFound
from diststorage.gateway.api.object_layout import (
    DEFAULT_SEGMENTS_PER_PAGE,
    MAX_SEGMENT_START,
    LayoutQuery,
    object_layout,
    query_number,
)
from diststorage.gateway.dashboard.context import dashboard_of, render_fragment, render_page
from diststorage.gateway.dashboard.object_links import (
    GRID_PATH,
    OBJECT_PATH,
    bounded_text,
    grid_url,
    listing_url,
    object_url,
    parent_prefix,
    prefix_crumbs,
)
from diststorage.meta import DEFAULT_NAMESPACE, MAX_SEGMENTS_PER_PAGE

# A segment's spare nodes, as a class of the spare cell: the text says the number anyway.
_FULL, _SOME, _NONE, _UNREADABLE = "spare-full", "spare-some", "spare-none", "unreadable"


def parse_object_query(query: Mapping[str, str]) -> LayoutQuery:
    """Raises InvalidKey without a key, InvalidRequest for a bad page."""
    key = bounded_text(query, "key")
    if not key:
        raise InvalidKey("the object page needs a key (?key=)")
    return LayoutQuery(
        bucket=bounded_text(query, "bucket") or DEFAULT_NAMESPACE,
        key=key,
        start=query_number(query, "start", 0, MAX_SEGMENT_START, 0),
        limit=query_number(query, "limit", 1, MAX_SEGMENTS_PER_PAGE, DEFAULT_SEGMENTS_PER_PAGE),
    )


async def object_view(request: web.Request) -> web.Response:
    query = parse_object_query(request.query)
    folder = parent_prefix(query.key)
    try:
        layout = await object_layout(dashboard_of(request).services, query)
    except ObjectNotFound:
        missing: dict[str, Any] = {
            "bucket": query.bucket,
            "key": query.key,
            "folder_href": listing_url(query.bucket, folder),
        }
        return await render_page(
            request, "object_missing.html", missing, screen="objects", status=404
        )
    context = {
        "layout": layout,
        "grid": grid_context(query, layout),
        "crumbs": prefix_crumbs(query.bucket, folder),
        "buckets_href": listing_url(),
    }
    return await render_page(request, "object.html", context, screen="objects")


async def grid_fragment(request: web.Request) -> web.Response:
    query = parse_object_query(request.query)
    layout = await object_layout(dashboard_of(request).services, query)
    return await render_fragment(
        request, "_object_grid.html", {"grid": grid_context(query, layout)}
    )


def grid_context(query: LayoutQuery, layout: dict[str, Any]) -> dict[str, Any]:
    """The grid's rows (one per segment) and columns (the widest policy on the page), and the
    pager's links (plain ones, and the fragment's for htmx)."""
    segments = layout["segments"]
    columns = max((len(s["shards"]) for s in segments), default=0)
    rows = [
        {
            "segment": s,
            "label": _segment_label(s),
            "cells": s["shards"] + [None] * (columns - len(s["shards"])),
            "spare_class": _spare_class(s["spare_nodes"], s["full_spare_nodes"]),
        }
        for s in segments
    ]
    start, count = layout["start"], len(segments)
    previous = max(start - query.limit, 0) if start > 0 else None

    def links(at: int | None) -> dict[str, str] | None:
        if at is None:
            return None
        return {
            "href": object_url(query.bucket, query.key, at, query.limit),
            "fragment": grid_url(query.bucket, query.key, at, query.limit),
        }

    return {
        "columns": columns,
        "rows": rows,
        "first": start + 1 if count else 0,
        "last": start + count,
        "total": layout["segment_count"],
        "inline": layout["inline"],
        "inline_parts": layout["inline_parts"],
        "previous": links(previous),
        "next": links(layout["next_start"]),
    }


def _segment_label(segment: dict[str, Any]) -> str:
    if segment["part_index"] is None:
        return f"segment {segment['segment_index']}"
    return f"part {segment['part_index']} · segment {segment['segment_index']}"


def _spare_class(spare: int, full: int) -> str:
    if spare < 0:
        return _UNREADABLE
    if spare == 0:
        return _NONE
    return _FULL if spare >= full else _SOME


def add_routes(app: web.Application) -> None:
    app.router.add_get(OBJECT_PATH, object_view)
    app.router.add_get(GRID_PATH, grid_fragment)
