"""The ListObjects codec: parameters, continuation tokens, V1 markers and encoding-type=url,
whose output botocore's own decoders (what every boto3 and aws-cli listing runs) turn back
into the keys."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from botocore.handlers import decode_list_object, decode_list_object_v2

from diststorage.core.errors import InvalidRequest
from diststorage.gateway.s3.listing_codec import (
    MAX_KEYS,
    ListRequest,
    ListResultHead,
    ListVersion,
    decode_continuation_token,
    encode_continuation_token,
    list_result_head,
    parse_list_request,
    s3_url_encode,
)

AWKWARD = (
    "a b",
    "a+b",
    "100%",
    "한글/x",
    "dir/",
    "//x",
    "a/../b",
    "%2F",
    "~!'()*",
    "x\ry\nz\x01",
    "é\U0010ffff",
    "a=b&c;d?#",
)


# -- encoding-type=url -----------------------------------------------------------------------


def test_url_encoding_is_what_aws_sends_for_the_characters_that_matter() -> None:
    assert s3_url_encode("a+b") == "a%2Bb"
    assert s3_url_encode("100%") == "100%25"
    assert s3_url_encode("한글/x") == "%ED%95%9C%EA%B8%80/x"
    assert s3_url_encode("dir/") == "dir/"
    assert s3_url_encode("//x") == "//x"
    assert s3_url_encode("a/../b") == "a/../b"
    assert s3_url_encode("a b") == "a%20b"  # AWS: "a+b"; both decode to "a b" (see the module)
    assert s3_url_encode("x\ry") == "x%0Dy"  # what XML 1.0 cannot carry travels encoded


def _botocore_decodes(parsed: dict[str, Any], version: ListVersion) -> dict[str, Any]:
    """What boto3 hands its caller for a parsed answer, when it set encoding-type itself."""
    decoder = decode_list_object if version is ListVersion.V1 else decode_list_object_v2
    decoder(parsed=parsed, context={"encoding_type_auto_set": True})
    return parsed


def _parsed_answer(head: ListResultHead, request: ListRequest, keys: list[str]) -> dict[str, Any]:
    """The fields botocore's XML parser would produce from our answer."""
    fields = {
        "Prefix": head.prefix,
        "Delimiter": head.delimiter,
        "EncodingType": head.encoding_type,
        "Marker": head.marker,
        "NextMarker": head.next_marker,
        "StartAfter": head.start_after,
        "ContinuationToken": head.continuation_token,
        "NextContinuationToken": head.next_continuation_token,
        "Contents": [{"Key": request.encode(k)} for k in keys],
        "CommonPrefixes": [{"Prefix": request.encode(k + "/")} for k in keys],
    }
    return {name: value for name, value in fields.items() if value is not None}


@pytest.mark.parametrize("key", AWKWARD)
def test_botocore_decodes_every_encoded_element_back_v2(key: str) -> None:
    token = encode_continuation_token(key)
    query = {"list-type": "2", "encoding-type": "url", "delimiter": key, "start-after": key}
    request = parse_list_request(query | {"prefix": key, "continuation-token": token})
    head = list_result_head(request, truncated=True, next_start_after=key + "/", key_count=2)
    answer = _botocore_decodes(_parsed_answer(head, request, [key]), ListVersion.V2)
    assert answer["Prefix"] == answer["Delimiter"] == answer["StartAfter"] == key
    assert answer["Contents"] == [{"Key": key}]
    assert answer["CommonPrefixes"] == [{"Prefix": key + "/"}]
    # Tokens are passed back as they came: never encoded, never decoded.
    assert answer["ContinuationToken"] == token
    assert decode_continuation_token(answer["NextContinuationToken"]) == key + "/"


@pytest.mark.parametrize("key", AWKWARD)
def test_botocore_decodes_every_encoded_element_back_v1(key: str) -> None:
    query = {"encoding-type": "url", "delimiter": key, "marker": key, "prefix": key}
    request = parse_list_request(query)
    head = list_result_head(request, truncated=True, next_start_after=key + "/", key_count=2)
    answer = _botocore_decodes(_parsed_answer(head, request, [key]), ListVersion.V1)
    assert answer["Delimiter"] == answer["Marker"] == key
    assert answer["NextMarker"] == key + "/"
    assert answer["Contents"] == [{"Key": key}]
    assert answer["CommonPrefixes"] == [{"Prefix": key + "/"}]
    # botocore leaves a V1 Prefix as S3 encoded it.
    assert answer["Prefix"] == s3_url_encode(key)


def test_without_encoding_nothing_is_encoded_and_no_encoding_type_is_named() -> None:
    request = parse_list_request({"list-type": "2", "prefix": "a b+", "start-after": "a b+c"})
    head = list_result_head(request, truncated=False, next_start_after=None, key_count=0)
    assert head.encoding_type is None
    assert head.prefix == "a b+" and head.start_after == "a b+c"
    assert request.encode("a b+/") == "a b+/"


# -- continuation tokens ---------------------------------------------------------------------


@pytest.mark.parametrize("key", [*AWKWARD, "k", "x" * 1024])
def test_continuation_tokens_round_trip_and_are_opaque(key: str) -> None:
    token = encode_continuation_token(key)
    assert decode_continuation_token(token) == key
    assert key not in token or len(key) < 3
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _token(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("token", "why"),
    [
        ("", "not a token this server issued"),
        ("a+b/", "not a token this server issued"),  # standard base64, not base64url
        ("AQ==", "not a token this server issued"),  # padded
        ("A" * 2049, "not a token this server issued"),
        ("AQBhY", "not base64url"),  # a length base64 cannot have
        (_token(b"\x02abc"), "unknown token version"),
        (_token(b"\x01"), "unknown token version"),
        (_token(b"\x01\xff\xfe"), "not UTF-8"),
        (_token(b"\x01a")[:-1] + "F", "not in canonical form"),  # trailing bits set
    ],
)
def test_a_token_the_server_did_not_make_is_refused(token: str, why: str) -> None:
    with pytest.raises(InvalidRequest, match="continuation token provided is incorrect") as info:
        decode_continuation_token(token)
    assert why in info.value.message


def test_a_bad_token_in_a_request_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="continuation token"):
        parse_list_request({"list-type": "2", "continuation-token": "nope!"})
    with pytest.raises(InvalidRequest, match="continuation token"):
        parse_list_request({"list-type": "2", "continuation-token": ""})


# -- parameters ------------------------------------------------------------------------------


def test_defaults() -> None:
    assert parse_list_request({}) == ListRequest(ListVersion.V1)
    v2 = parse_list_request({"list-type": "2"})
    assert v2 == ListRequest(ListVersion.V2) and v2.max_keys == MAX_KEYS == 1000
    assert v2.start == "" and not v2.lists_owner and ListRequest(ListVersion.V1).lists_owner


def test_where_a_page_starts() -> None:
    token = encode_continuation_token("from-token")
    both = {"list-type": "2", "start-after": "from-start-after", "continuation-token": token}
    request = parse_list_request(both)
    assert request.start == "from-token"  # the token wins; StartAfter is still echoed
    assert request.start_after == "from-start-after" and request.continuation_token == token
    assert parse_list_request({"list-type": "2", "start-after": "s"}).start == "s"
    # Each version ignores the other's parameters.
    assert parse_list_request({"list-type": "2", "marker": "m"}).start == ""
    v1 = parse_list_request({"marker": "m", "start-after": "s", "continuation-token": "!"})
    assert v1.start == v1.marker == "m" and v1.continuation_token is None


@pytest.mark.parametrize(
    ("value", "max_keys"),
    [("0", 0), ("1", 1), ("999", 999), ("1000", 1000), ("1001", 1000), ("2147483647", 1000)],
)
def test_max_keys_in_range_and_clamped_as_aws_does(value: str, max_keys: int) -> None:
    assert parse_list_request({"max-keys": value}).max_keys == max_keys
    assert parse_list_request({"list-type": "2", "max-keys": value}).max_keys == max_keys


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", "Argument maxKeys must be an integer between 0 and 2147483647"),
        ("2147483648", "Provided max-keys not an integer or within integer range"),
        ("ten", "Provided max-keys not an integer or within integer range"),
        ("", "Provided max-keys not an integer or within integer range"),
        (" 5", "Provided max-keys not an integer or within integer range"),
        ("+5", "Provided max-keys not an integer or within integer range"),
        ("1_000", "Provided max-keys not an integer or within integer range"),
        ("٣", "Provided max-keys not an integer or within integer range"),  # not ASCII
        ("1.5", "Provided max-keys not an integer or within integer range"),
    ],
)
def test_max_keys_out_of_range_is_refused(value: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_list_request({"list-type": "2", "max-keys": value})
    assert info.value.message == message


@pytest.mark.parametrize("value", ["URL", "base64", "", "url "])
def test_only_url_encoding_is_accepted(value: str) -> None:
    with pytest.raises(InvalidRequest, match="Invalid Encoding Method specified in Request"):
        parse_list_request({"encoding-type": value})
    assert parse_list_request({"encoding-type": "url"}).url_encoding


def test_fetch_owner() -> None:
    assert parse_list_request({"list-type": "2", "fetch-owner": "true"}).lists_owner
    assert parse_list_request({"list-type": "2", "fetch-owner": "TRUE"}).fetch_owner
    assert not parse_list_request({"list-type": "2", "fetch-owner": "false"}).lists_owner
    with pytest.raises(InvalidRequest, match="fetch-owner must be true or false"):
        parse_list_request({"list-type": "2", "fetch-owner": "yes"})


def test_an_unknown_list_type_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="list-type must be 2"):
        parse_list_request({"list-type": "3"})


def test_text_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="prefix is not valid UTF-8"):
        parse_list_request({"prefix": "a\udcff"})


def test_prefix_and_delimiter_are_passed_through_whole() -> None:
    request = parse_list_request({"prefix": "photos/2024/", "delimiter": "::"})
    assert (request.prefix, request.delimiter) == ("photos/2024/", "::")
    assert parse_list_request({"delimiter": ""}).delimiter == ""


# -- the answer's head -----------------------------------------------------------------------


def test_v1_names_a_next_marker_only_for_a_truncated_listing_with_a_delimiter() -> None:
    with_delimiter = parse_list_request({"delimiter": "/"})
    head = list_result_head(with_delimiter, truncated=True, next_start_after="boo/", key_count=2)
    assert head == ListResultHead(
        prefix="",
        delimiter="/",
        max_keys=1000,
        encoding_type=None,
        is_truncated=True,
        marker="",
        next_marker="boo/",
    )
    last = list_result_head(with_delimiter, truncated=False, next_start_after=None, key_count=1)
    assert last.next_marker is None and not last.is_truncated
    without = parse_list_request({"marker": "k1"})
    head = list_result_head(without, truncated=True, next_start_after="k9", key_count=9)
    assert head.next_marker is None and head.marker == "k1" and head.delimiter is None


def test_v2_head_counts_keys_and_hands_out_a_token() -> None:
    request = parse_list_request({"list-type": "2", "max-keys": "2", "encoding-type": "url"})
    head = list_result_head(request, truncated=True, next_start_after="a b/", key_count=2)
    assert head.key_count == 2 and head.max_keys == 2 and head.encoding_type == "url"
    assert head.marker is None and head.next_marker is None
    assert head.start_after is None and head.continuation_token is None
    assert head.next_continuation_token is not None
    assert decode_continuation_token(head.next_continuation_token) == "a b/"
    last = list_result_head(request, truncated=False, next_start_after=None, key_count=0)
    assert last.next_continuation_token is None and last.key_count == 0
