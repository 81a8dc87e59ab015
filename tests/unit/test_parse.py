import pytest

from diststorage.core.errors import (
    InvalidKey,
    InvalidRequest,
    LengthRequired,
    PayloadTooLarge,
    RangeNotSatisfiable,
)
from diststorage.gateway.api.parse import (
    ByteRange,
    parse_declared_size,
    parse_key,
    parse_listing,
    parse_range,
)


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("/a", "a"),
        ("/a/b/c.txt", "a/b/c.txt"),
        ("/%2e%2e/x", "../x"),
        ("/../../etc/passwd", "../../etc/passwd"),
        ("/caf%C3%A9", "café"),
        ("/a%20b?x=1", "a b"),
        ("/a+b", "a+b"),
        ("/a%2Fb", "a/b"),
    ],
)
def test_keys_are_data(raw: str, key: str) -> None:
    assert parse_key(raw) == key


@pytest.mark.parametrize("raw", ["/", "/%ff", "/_/health", "/_/x/y", "/" + "a" * 1025])
def test_bad_keys(raw: str) -> None:
    with pytest.raises(InvalidKey):
        parse_key(raw)


def test_key_limit_counts_bytes() -> None:
    assert parse_key("/" + "a" * 1024) == "a" * 1024
    with pytest.raises(InvalidKey):
        parse_key("/" + "%C3%A9" * 513)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 10, None),
        ("bytes=0-0", 10, ByteRange(0, 1)),
        ("bytes=2-5", 10, ByteRange(2, 6)),
        ("bytes=5-", 10, ByteRange(5, 10)),
        ("bytes=-3", 10, ByteRange(7, 10)),
        ("bytes=-30", 10, ByteRange(0, 10)),
        ("bytes=8-100", 10, ByteRange(8, 10)),
        ("bytes=0-1,4-5", 10, None),
        ("items=0-1", 10, None),
        ("bytes=5-2", 10, None),
    ],
)
def test_ranges(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(("header", "size"), [("bytes=10-", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


def test_declared_size() -> None:
    assert parse_declared_size(5, None, 100) == 5
    assert parse_declared_size(None, "chunked", 100) is None
    with pytest.raises(LengthRequired):
        parse_declared_size(None, None, 100)
    with pytest.raises(PayloadTooLarge):
        parse_declared_size(101, None, 100)


def test_listing_limits() -> None:
    assert parse_listing({"prefix": "a", "limit": "5"}, 1000).limit == 5
    for bad in ("0", "1001", "x", "-1"):
        with pytest.raises(InvalidRequest):
            parse_listing({"limit": bad}, 1000)
