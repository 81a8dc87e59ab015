"""The Objects screen's URLs and folder crumbs: every key, prefix and bucket in the query
string, percent-encoded so that it comes back exactly as it went in. Pure."""

from __future__ import annotations

import urllib.parse

import pytest

from diststorage.core.errors import InvalidRequest
from diststorage.gateway.dashboard.object_links import (
    bounded_text,
    listing_url,
    object_url,
    parent_prefix,
    prefix_crumbs,
)

KEYS = [
    "plain",
    "a b+c&d=e?f#g",
    "/../../etc/passwd",
    "%2F%41 100%",
    '<script>"quoted"</script>',
    "ключ/☃",
]


@pytest.mark.parametrize("key", KEYS)
def test_an_object_url_carries_the_key_exactly(key: str) -> None:
    url = object_url("default", key, 3, 10)
    path, _, query = url.partition("?")
    assert path == "/_/ui/objects/object"
    assert urllib.parse.parse_qs(query) == {
        "bucket": ["default"],
        "key": [key],
        "start": ["3"],
        "limit": ["10"],
    }
    # No character a browser or a proxy might take for something else.
    assert not set(query) & set(" +#<>\"'")


def test_empty_parameters_are_left_out() -> None:
    assert listing_url() == "/_/ui/objects"
    assert listing_url("b") == "/_/ui/objects?bucket=b"
    assert (
        listing_url("b", "p/", "p/x", 5) == "/_/ui/objects?bucket=b&prefix=p%2F&after=p%2Fx&limit=5"
    )


def test_crumbs_name_each_folder_down_to_the_prefix() -> None:
    assert prefix_crumbs("b", "") == [("b", "/_/ui/objects?bucket=b")]
    assert [label for label, _ in prefix_crumbs("b", "a/b/")] == ["b", "a/", "b/"]
    assert [label for label, _ in prefix_crumbs("b", "a//c")] == ["b", "a/", "/", "c"]
    assert prefix_crumbs("b", "a/b/")[-1][1] == listing_url("b", "a/b/")


def test_a_key_is_listed_in_the_folder_up_to_its_last_slash() -> None:
    assert parent_prefix("a/b/c") == "a/b/"
    assert parent_prefix("top") == ""
    assert parent_prefix("dir/") == "dir/"


def test_query_texts_are_at_most_a_key_long() -> None:
    assert bounded_text({"key": "é" * 512}, "key") == "é" * 512
    assert bounded_text({}, "key") == ""
    with pytest.raises(InvalidRequest, match="at most 1024 bytes"):
        bounded_text({"key": "é" * 513}, "key")
