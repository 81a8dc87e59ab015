import pytest
from multidict import CIMultiDict

from diststorage.core.errors import (
    InvalidKey,
    InvalidPolicy,
    InvalidRequest,
    LengthRequired,
    MethodNotAllowed,
    PayloadTooLarge,
    RangeNotSatisfiable,
)
from diststorage.core.policy import parse_policy
from diststorage.gateway.api.admin import SystemEndpoint, parse_system_route
from diststorage.gateway.api.parse import (
    ByteRange,
    is_system_path,
    parse_declared_size,
    parse_key,
    parse_listing,
    parse_object_request,
    parse_range,
    parse_range_spec,
)
from diststorage.gateway.objects import (
    DeleteOperation,
    GetOperation,
    HeadOperation,
    ListOperation,
    PutOperation,
    RangeSpec,
)
from diststorage.meta import DEFAULT_NAMESPACE, NodeLifecycle


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


def request(
    method: str,
    raw_path: str,
    headers: dict[str, str] | None = None,
    content_length: int | None = None,
    query: dict[str, str] | None = None,
) -> object:
    return parse_object_request(
        method, raw_path, query or {}, CIMultiDict(headers or {}), content_length, 100
    )


def test_object_requests_become_typed_operations() -> None:
    assert request("PUT", "/a%20b", {"content-type": "text/plain"}, 5) == PutOperation(
        DEFAULT_NAMESPACE, "a b", "text/plain", None, 5, replace=True
    )
    assert request("POST", "/k", {"X-Redundancy": "replicate:2"}, 0) == PutOperation(
        DEFAULT_NAMESPACE, "k", "application/octet-stream", parse_policy("replicate:2"), 0, False
    )
    assert request("PUT", "/k", {"Transfer-Encoding": "chunked", "Content-Type": ""}) == (
        PutOperation(DEFAULT_NAMESPACE, "k", "application/octet-stream", None, None, True)
    )
    assert request("GET", "/k", {"Range": "bytes=2-"}) == GetOperation(
        DEFAULT_NAMESPACE, "k", RangeSpec(2, None, "bytes=2-")
    )
    assert request("HEAD", "/k") == HeadOperation(DEFAULT_NAMESPACE, "k", None)
    assert request("DELETE", "/k") == DeleteOperation(DEFAULT_NAMESPACE, "k")
    assert request("GET", "/?limit=3", query={"limit": "3", "prefix": "p"}) == ListOperation(
        DEFAULT_NAMESPACE, "p", "", 3
    )


def test_request_errors_come_in_reading_order() -> None:
    with pytest.raises(MethodNotAllowed, match="PATCH is not allowed here"):
        request("PATCH", "/")
    with pytest.raises(MethodNotAllowed):
        request("PUT", "/", content_length=1)
    with pytest.raises(InvalidKey):
        request("GET", "/_/x")
    # The body's length is checked before the policy asked for.
    with pytest.raises(PayloadTooLarge):
        request("PUT", "/k", {"X-Redundancy": "bad"}, 101)
    with pytest.raises(InvalidPolicy):
        request("PUT", "/k", {"X-Redundancy": "bad"}, 1)
    with pytest.raises(LengthRequired):
        request("POST", "/k")


def test_system_paths() -> None:
    assert is_system_path("/_/health?x=1")
    assert not is_system_path("/_x")
    assert not is_system_path("/")


def test_range_specs_are_syntax_only() -> None:
    assert parse_range_spec("bytes=-0") == RangeSpec(None, 0, "bytes=-0")
    assert parse_range_spec("bytes=5-2") is None
    assert parse_range_spec("bytes=0-1,3-4") is None
    assert parse_range_spec(" bytes=1-2 ") == RangeSpec(1, 2, " bytes=1-2 ")
    with pytest.raises(RangeNotSatisfiable, match="range bytes=-0 selects no bytes"):
        RangeSpec(None, 0, "bytes=-0").resolve(10)


@pytest.mark.parametrize(
    ("path", "endpoint", "node_id", "lifecycle"),
    [
        ("health", SystemEndpoint.HEALTH, "", None),
        ("nodes", SystemEndpoint.NODES, "", None),
        ("repair", SystemEndpoint.REPAIR, "", None),
        ("metrics", SystemEndpoint.METRICS, "", None),
        ("rebalance", SystemEndpoint.REBALANCE, "", None),
        ("nodes/ab12", SystemEndpoint.NODE, "ab12", None),
        ("nodes/ab12/drain", SystemEndpoint.NODE_ACTION, "ab12", NodeLifecycle.DRAINING),
        ("nodes/ab12/activate", SystemEndpoint.NODE_ACTION, "ab12", NodeLifecycle.ACTIVE),
    ],
)
def test_system_routes_parse_into_endpoints(
    path: str, endpoint: SystemEndpoint, node_id: str, lifecycle: NodeLifecycle | None
) -> None:
    route = parse_system_route(path)
    assert (route.endpoint, route.node_id, route.lifecycle) == (endpoint, node_id, lifecycle)


@pytest.mark.parametrize("path", ["", "node", "nodes/", "nodes/XYZ", "nodes/ab/stop", "health/"])
def test_unknown_system_routes(path: str) -> None:
    with pytest.raises(InvalidKey, match="reserved for system routes"):
        parse_system_route(path)
