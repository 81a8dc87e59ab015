"""Listing parameters: S3's ``parse_list_request``, its continuation tokens and
``encoding-type=url``, and the native API's ``parse_listing``. Any query gives a request within
its documented bounds or InvalidRequest; tokens and encodings round-trip."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

from hypothesis import example, given
from hypothesis import strategies as st

from diststorage.core.errors import InvalidRequest
from diststorage.gateway.api.parse import parse_listing
from diststorage.gateway.s3.listing_codec import (
    MAX_KEYS,
    ListVersion,
    decode_continuation_token,
    encode_continuation_token,
    parse_list_request,
    s3_url_encode,
)
from diststorage.meta import MAX_LIST_LIMIT

from .strategies import any_text, digit_strings

_ASCII_DIGITS = re.compile(r"[0-9]+")
_ENCODED = re.compile(r"(?:[A-Za-z0-9_.~/-]|%[0-9A-F]{2})*")
PARAMETERS = (
    "list-type", "prefix", "delimiter", "max-keys", "encoding-type", "marker",
    "continuation-token", "start-after", "fetch-owner",
)  # fmt: skip


def _whole_number(text: str, at_most: int) -> int | None:
    """The value of ASCII digits (leading zeros allowed) when it is at most ``at_most``."""
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    significant = text.lstrip("0")
    if len(significant) > len(str(at_most)):
        return None
    value = int(significant or "0")
    return value if value <= at_most else None


def _values() -> st.SearchStrategy[str]:
    tokens = st.text(max_size=20).map(encode_continuation_token)
    fixed = st.sampled_from(["2", "1", "url", "URL", "true", "False", "", "-1", "null"])
    return st.one_of(fixed, digit_strings(), tokens, any_text(24))


def _queries() -> st.SearchStrategy[dict[str, str]]:
    names = st.one_of(st.sampled_from(PARAMETERS), any_text(8))
    return st.dictionaries(names, _values(), max_size=6)


@given(_queries())
@example({"max-keys": "9" * 5000})
@example({"max-keys": "0" * 5000 + "7"})
@example({"max-keys": "²"})
@example({"list-type": "2", "continuation-token": "AQ"})
@example({"prefix": "\udcff"})
def test_an_s3_list_request_is_within_its_bounds_or_invalid(query: dict[str, str]) -> None:
    try:
        request = parse_list_request(query)
    except InvalidRequest:
        return
    max_keys = query.get("max-keys")
    argument = _whole_number(max_keys, 2**31 - 1) if max_keys is not None else MAX_KEYS
    assert argument is not None
    assert request.max_keys == min(argument, MAX_KEYS)
    assert request.prefix == query.get("prefix", "")
    assert request.delimiter == query.get("delimiter", "")
    if request.version is ListVersion.V1:
        assert query.get("list-type") is None
        assert request.start == query.get("marker", "")
    elif "continuation-token" in query:
        assert request.start == decode_continuation_token(query["continuation-token"])
    else:
        assert request.start == query.get("start-after", "")
    for text in (request.prefix, request.delimiter, request.start):
        text.encode()  # never a lone surrogate


@given(st.text(min_size=1, max_size=300))
@example("k" * 1024)
def test_a_continuation_token_gives_back_its_key(key: str) -> None:
    """Any key a page can end at: never "" (a key or a common prefix is never empty), whose
    token ``decode_continuation_token`` refuses on purpose (tests/unit/test_listing_codec)."""
    token = encode_continuation_token(key)
    assert decode_continuation_token(token) == key


@given(st.one_of(any_text(40), st.from_regex(r"[A-Za-z0-9_-]{0,40}", fullmatch=True)))
@example("AQ")
@example("AQ=")
@example("A")
@example("Ag")
@example("Af8")
@example("AWI")
def test_a_token_the_server_did_not_make_is_refused(token: str) -> None:
    try:
        key = decode_continuation_token(token)
    except InvalidRequest:
        return
    assert encode_continuation_token(key) == token


@given(st.text(max_size=80))
@example("a+b c%20d/e~f")
def test_url_encoding_is_undone_by_unquote_plus(text: str) -> None:
    encoded = s3_url_encode(text)
    assert _ENCODED.fullmatch(encoded)
    assert unquote_plus(encoded) == text


@given(st.dictionaries(st.sampled_from(["limit", "prefix", "after", "x"]), digit_strings()))
@example({"limit": "²"})
@example({"limit": "9" * 5000})
@example({"limit": "١"})
@example({"limit": "0001000"})
@example({"limit": "1001"})
def test_a_native_listing_limit_is_a_whole_number_in_range_or_invalid(
    query: dict[str, str],
) -> None:
    limit = query.get("limit")
    expected = MAX_LIST_LIMIT if limit is None else _whole_number(limit, MAX_LIST_LIMIT)
    try:
        listing = parse_listing(query, MAX_LIST_LIMIT)
    except InvalidRequest:
        assert expected is None or expected == 0
        return
    assert listing.limit == expected
    assert listing.prefix == query.get("prefix", "")
    assert listing.after == query.get("after", "")
