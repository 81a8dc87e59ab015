"""Object keys from request paths: the native API's ``parse_key`` and S3's ``target_of`` /
``check_key``. Any path gives a key that keeps its documented promises, or the documented
error; any key a client can mean comes back from its encoding unchanged."""

from __future__ import annotations

from urllib.parse import quote, unquote_to_bytes

from hypothesis import example, given
from hypothesis import strategies as st

from diststorage.core.errors import InvalidKey, InvalidRequest, KeyTooLong
from diststorage.gateway.api.parse import MAX_KEY_BYTES, SYSTEM_PREFIX, parse_key
from diststorage.gateway.s3.addressing import Target, check_key, target_of
from diststorage.gateway.s3.xml import XML_ILLEGAL

from .strategies import any_text, pieced, raw_paths

S3_DOMAIN = "s3.example"
KEY_TEXT = st.one_of(
    st.text(min_size=1, max_size=40),
    pieced(("_/", "/", "?", "%", "+", " ", "..", "\r", "\n", "é", "\u202e"), free=st.text()),
    st.integers(min_value=MAX_KEY_BYTES - 2, max_value=MAX_KEY_BYTES + 2).map(lambda n: "k" * n),
)
BUCKETS = st.from_regex(r"[a-z0-9][a-z0-9.-]{1,20}[a-z0-9]", fullmatch=True)


def _native_key_oracle(raw_path: str) -> str | None:
    """What ``parse_key`` must answer, worked out on the bytes: None for an invalid key."""
    encoded = raw_path.split("?", 1)[0].removeprefix("/")
    try:
        key = unquote_to_bytes(encoded.encode("utf-8", "surrogatepass")).decode("utf-8")
    except UnicodeDecodeError:
        return None
    size = len(key.encode())
    if not 1 <= size <= MAX_KEY_BYTES or key.startswith(SYSTEM_PREFIX):
        return None
    return key


@given(raw_paths())
@example("/%ed%a0%80")
@example("/\udcff")
@example("/_%2Fnodes")
@example("/" + "%C3%A9" * 512)
@example("/" + "%C3%A9" * 513)
def test_a_native_key_is_the_paths_utf8_or_invalid_key(raw_path: str) -> None:
    expected = _native_key_oracle(raw_path)
    try:
        key = parse_key(raw_path)
    except InvalidKey:
        assert expected is None
        return
    assert key == expected


@given(KEY_TEXT, any_text(16))
def test_a_native_key_survives_its_percent_encoding(key: str, query: str) -> None:
    if not 1 <= len(key.encode()) <= MAX_KEY_BYTES or key.startswith(SYSTEM_PREFIX):
        return
    assert parse_key("/" + quote(key, safe="") + "?" + query) == key
    assert parse_key("/" + quote(key, safe="/")) == key


@given(st.one_of(st.none(), any_text(24)), raw_paths(), st.sampled_from([None, S3_DOMAIN]))
@example(None, "/bucket/a\udcff", None)
@example("b.s3.example", "/\udcff", S3_DOMAIN)
@example(None, "bucket/key", None)
def test_an_s3_target_is_a_bucket_and_a_checked_key_or_the_documented_errors(
    host: str | None, raw_path: str, domain: str | None
) -> None:
    try:
        target = target_of(host, raw_path, domain)
    except InvalidRequest:
        assert not raw_path.startswith("/") or "%" in raw_path
        return
    assert isinstance(target, Target)
    if target.key:
        _check_key_as_documented(target.key)


@given(any_text(32))
@example("a\udcff")
@example("k" * (MAX_KEY_BYTES + 1))
@example("line\x0bbreak")
def test_check_key_takes_a_key_or_raises_invalid_key(key: str) -> None:
    _check_key_as_documented(key)


def _check_key_as_documented(key: str) -> None:
    try:
        encoded = key.encode()
    except UnicodeEncodeError:
        encoded = None
    try:
        assert check_key(key) == key
    except KeyTooLong:
        assert encoded is not None and len(encoded) > MAX_KEY_BYTES
        return
    except InvalidKey:
        assert encoded is None or not key or XML_ILLEGAL.search(key)
        return
    assert encoded is not None and 1 <= len(encoded) <= MAX_KEY_BYTES
    assert not XML_ILLEGAL.search(key)


@given(BUCKETS, KEY_TEXT)
def test_an_s3_key_survives_path_style_and_virtual_host_addressing(bucket: str, key: str) -> None:
    encoded = quote(key, safe="/")
    assert target_of("127.0.0.1:9000", f"/{bucket}/{encoded}", S3_DOMAIN) == Target(bucket, key)
    virtual_host = f"{bucket}.{S3_DOMAIN}:9000"
    assert target_of(virtual_host, f"/{encoded}?x=1", S3_DOMAIN) == Target(bucket, key)
