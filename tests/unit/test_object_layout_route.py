"""Parsing ``/_/objects/{key}/layout`` and naming a shard's state: pure, no gateway. The route
with a real cluster behind it is tested in tests/integration/test_object_layout.py."""

from __future__ import annotations

import urllib.parse

import pytest

from diststorage.core.errors import InvalidKey, InvalidRequest
from diststorage.gateway.api.admin import SystemEndpoint, parse_system_route
from diststorage.gateway.api.object_layout import (
    DEFAULT_SEGMENTS_PER_PAGE,
    LayoutQuery,
    layout_path_key,
    parse_layout_query,
    shard_state,
)
from diststorage.meta import MAX_SEGMENTS_PER_PAGE

ODD_KEYS = [
    "plain",
    "a/b/c",
    "x/layout",
    "layout/layout/layout",
    "/../etc/passwd",
    '<script>alert("x")</script>',
    "100% & 'quotes'",
    "?query#fragment",
    "ключ/☃/🙂",
    "k" * 1024,
]


@pytest.mark.parametrize("key", ODD_KEYS)
@pytest.mark.parametrize("safe", ["/", ""])
def test_any_key_comes_back_from_its_path(key: str, safe: str) -> None:
    path = f"objects/{urllib.parse.quote(key, safe=safe)}/layout"
    route = parse_system_route(path)
    assert route.endpoint == SystemEndpoint.OBJECT_LAYOUT
    assert parse_layout_query(route.key, {}) == LayoutQuery("default", key)


@pytest.mark.parametrize("path", ["objects/layout", "objects/a", "objects/a/layout/", "objects"])
def test_other_paths_are_not_the_layout_route(path: str) -> None:
    assert layout_path_key(path) is None
    with pytest.raises(InvalidKey, match="reserved for system routes"):
        parse_system_route(path)


@pytest.mark.parametrize(
    ("encoded", "problem"),
    [("", "the key is empty"), ("%ff", "not valid UTF-8"), ("k" * 1025, "1025 bytes")],
)
def test_bad_keys_are_refused(encoded: str, problem: str) -> None:
    with pytest.raises(InvalidKey, match=problem):
        parse_layout_query(encoded, {})


def test_the_bucket_and_the_page_come_from_the_query() -> None:
    query = parse_layout_query("k", {"bucket": "photos", "start": "007", "limit": "25"})
    assert query == LayoutQuery("photos", "k", 7, 25)
    assert parse_layout_query("k", {"bucket": ""}).bucket == "default"
    assert parse_layout_query("k", {}).limit == DEFAULT_SEGMENTS_PER_PAGE
    assert parse_layout_query("k", {"limit": str(MAX_SEGMENTS_PER_PAGE)}).limit == 1000


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("limit", "0"),
        ("limit", str(MAX_SEGMENTS_PER_PAGE + 1)),
        ("limit", "-1"),
        ("limit", "²"),
        ("start", "-1"),
        ("start", "1e3"),
        ("start", "9" * 5000),
    ],
)
def test_bad_pages_are_refused(name: str, value: str) -> None:
    with pytest.raises(InvalidRequest, match=f"{name} must be a whole number"):
        parse_layout_query("k", {name: value})


@pytest.mark.parametrize(
    ("chunk", "node", "lifecycle", "state"),
    [
        ("ok", "up", "active", "ok"),
        ("damaged", "up", "active", "damaged"),
        ("damaged", "down", "active", "damaged"),
        ("ok", "down", "active", "down"),
        ("ok", "unknown", None, "down"),
        ("ok", "suspect", "active", "suspect"),
        ("ok", "up", "draining", "draining"),
        ("move", "up", "active", "moving"),
        ("move", "down", "active", "down"),
    ],
)
def test_a_shard_state_names_the_worst_of_chunk_and_node(
    chunk: str, node: str, lifecycle: str | None, state: str
) -> None:
    assert shard_state(chunk, node, lifecycle) == state
