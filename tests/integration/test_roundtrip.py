"""Round trips through a real cluster: bytes in, the same bytes out, under every policy.

One default cluster (the gateway's default stripes) serves most tests; a second one with 64 KiB
stripes (so a segment of the default stripe count is a few MiB) makes objects of several
segments cheap.
"""

from __future__ import annotations

import email.utils
import gzip
import time
import unicodedata
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import (
    DEFAULT_SEGMENT_STRIPES,
    DEFAULT_STRIPE,
    MIB,
    BigFile,
    ClusterOptions,
    chunk_files,
    cluster_in,
    error_code,
    gateway_client,
    md5_hex,
    node_of,
    object_chunks,
    random_bytes,
    remove_tree,
    wait_until,
    write_random_file,
)

from diststorage.client import Client, Response
from diststorage.local import LocalCluster

POLICIES = ("ec:4+2", "ec:6+0", "replicate:3")
SHARDS = {"ec:4+2": 6, "ec:6+0": 6, "replicate:3": 3}
SMALL_STRIPE = 64 * 1024
# ec:6+0 (a plain split, no spare shard) is refused unless the operator allows it.
SPLIT_ALLOWED = ("--min-spare-shards", "0")
SMALL_SEGMENT = SMALL_STRIPE * DEFAULT_SEGMENT_STRIPES
BIG_SIZE = 100 * MIB + 3
SIZES = (
    0,
    1,
    5,
    6,
    7,
    1024,
    MIB,
    DEFAULT_STRIPE - 1,
    DEFAULT_STRIPE,
    DEFAULT_STRIPE + 1,
    BIG_SIZE,
)


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    return ClusterOptions(gateway_args=SPLIT_ALLOWED)


@pytest.fixture(scope="module")
def small_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    options = ClusterOptions(gateway_args=("--stripe-size", str(SMALL_STRIPE), *SPLIT_ALLOWED))
    with cluster_in(tmp_path_factory.mktemp("small-stripes"), options) as running:
        yield running


@pytest.fixture(scope="module")
def small_http(small_cluster: LocalCluster) -> Client:
    return gateway_client(small_cluster.url)


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BigFile]:
    folder = tmp_path_factory.mktemp("bodies")
    try:
        yield write_random_file(folder / "big.bin", BIG_SIZE)
    finally:
        remove_tree(folder)


def assert_created(response: Response, key: str, size: int, md5: str, policy: str) -> None:
    assert response.status == 201, (response.status, response.body)
    info = response.json()
    assert info["key"] == key
    assert info["size"] == size
    assert info["md5"] == md5
    assert info["etag"] == f'"{md5}"'
    assert info["redundancy"] == policy
    assert response.header("ETag") == f'"{md5}"'
    modified = datetime.fromisoformat(info["last_modified"])
    assert abs(datetime.now(UTC) - modified) < timedelta(minutes=5), info


def assert_distinct_nodes(cluster: LocalCluster, new_files: set[Path], per_segment: int) -> None:
    """Every chunk of one segment sits on its own node."""
    nodes = [node_of(cluster, f) for f in new_files]
    assert len(new_files) == per_segment, sorted(str(f) for f in new_files)
    assert len(set(nodes)) == per_segment, nodes


# -- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("size", SIZES, ids=[str(s) for s in SIZES])
@pytest.mark.parametrize("policy", POLICIES)
def test_round_trip(
    cluster: LocalCluster, http: Client, big_file: BigFile, policy: str, size: int
) -> None:
    key = f"roundtrip/{policy}/{size}"
    before = chunk_files(cluster)
    headers = {"X-Redundancy": policy, "Content-Type": "application/x-test"}
    if size == BIG_SIZE:
        with big_file.path.open("rb") as body:
            created = http.put(key, body, headers | {"Content-Length": str(size)})
        expected_md5 = big_file.md5
    else:
        data = random_bytes(size)
        created = http.put(key, data, headers)
        expected_md5 = md5_hex(data)
    assert_created(created, key, size, expected_md5, policy)
    assert created.json()["content_type"] == "application/x-test"

    new_files = chunk_files(cluster) - before
    if size == 0:
        assert new_files == set()
    else:
        # Under 256 MiB everything fits in one segment: one chunk per shard, on distinct nodes.
        assert_distinct_nodes(cluster, new_files, SHARDS[policy])

    got = http.get_streamed(f"/roundtrip/{policy}/{size}")
    assert got.status == 200
    assert got.size == size
    assert got.md5 == expected_md5
    assert got.headers["Content-Length"] == str(size)
    assert got.headers["ETag"] == f'"{expected_md5}"'
    assert got.headers["X-Redundancy"] == policy
    assert got.headers["Content-Type"] == "application/x-test"
    assert email.utils.parsedate_to_datetime(got.headers["Last-Modified"]) is not None

    head = http.head(key)
    assert head.status == 200
    assert head.body == b""
    assert head.header("Content-Length") == str(size)
    assert head.header("ETag") == f'"{expected_md5}"'
    assert head.header("Last-Modified") == got.headers["Last-Modified"]


@pytest.mark.parametrize("policy", POLICIES)
def test_multi_segment_round_trip(
    small_cluster: LocalCluster, small_http: Client, policy: str
) -> None:
    """Three segments and a bit: every segment on its own set of distinct nodes."""
    size = 3 * SMALL_SEGMENT + 1000
    data = random_bytes(size)
    key = f"segments/{policy}"
    before = chunk_files(small_cluster)
    created = small_http.put(key, data, {"X-Redundancy": policy})
    assert_created(created, key, size, md5_hex(data), policy)
    new_files = chunk_files(small_cluster) - before
    assert len(new_files) == 4 * SHARDS[policy]

    got = small_http.get(key)
    assert got.status == 200
    assert md5_hex(got.body) == md5_hex(data)
    assert got.body == data


@pytest.mark.parametrize(
    "size",
    [SMALL_SEGMENT - 1, SMALL_SEGMENT, SMALL_SEGMENT + 1],
    ids=["segment-1", "segment", "segment+1"],
)
def test_segment_edge_round_trip(small_http: Client, size: int) -> None:
    data = random_bytes(size)
    key = f"segment-edge/{size}"
    created = small_http.put(key, data, {"X-Redundancy": "ec:4+2"})
    assert_created(created, key, size, md5_hex(data), "ec:4+2")
    got = small_http.get(key)
    assert got.status == 200
    assert got.body == data


# -- overwrite and create --------------------------------------------------------------------


def test_put_replaces_and_frees_old_chunks(cluster: LocalCluster, http: Client) -> None:
    key = "overwrite/object"
    first = random_bytes(2 * MIB + 17)
    before = chunk_files(cluster)
    assert http.put(key, first).status == 201
    first_files = chunk_files(cluster) - before
    assert len(first_files) == 6

    second = random_bytes(MIB + 3)
    replaced = http.put(key, second, {"X-Redundancy": "replicate:3"})
    assert_created(replaced, key, len(second), md5_hex(second), "replicate:3")
    assert replaced.json()["etag"] != f'"{md5_hex(first)}"'

    got = http.get(key)
    assert got.status == 200
    assert got.body == second
    assert got.header("ETag") == f'"{md5_hex(second)}"'
    assert got.header("X-Redundancy") == "replicate:3"
    assert http.list_keys("overwrite/") == [key]
    # The replaced version's chunks are garbage and go away.
    assert wait_until(lambda: not (first_files & chunk_files(cluster)), 10.0), (
        first_files & chunk_files(cluster)
    )


def test_post_creates_then_conflicts(cluster: LocalCluster, http: Client) -> None:
    key = "post/object"
    original = random_bytes(300_000)
    assert_created(
        http.put(key, original, method="POST"), key, len(original), md5_hex(original), "ec:4+2"
    )
    before = chunk_files(cluster)

    conflict = http.put(key, random_bytes(1000), method="POST")
    assert conflict.status == 409
    assert error_code(conflict) == "already_exists"

    got = http.get(key)
    assert got.status == 200
    assert got.body == original
    assert got.header("ETag") == f'"{md5_hex(original)}"'
    assert http.list_keys("post/") == [key]
    time.sleep(0.5)
    assert chunk_files(cluster) == before


# -- ranges ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ranged(http: Client) -> bytes:
    """An object of three stripes and a bit on the default cluster."""
    data = random_bytes(3 * DEFAULT_STRIPE + 12345)
    assert http.put("ranges/object", data).status == 201
    return data


def assert_range(response: Response, data: bytes, first: int, last: int) -> None:
    assert response.status == 206, (response.status, response.body[:200])
    assert response.header("Content-Range") == f"bytes {first}-{last}/{len(data)}"
    assert response.header("Content-Length") == str(last - first + 1)
    assert response.header("ETag") == f'"{md5_hex(data)}"'
    assert response.body == data[first : last + 1]


def resolve(spec: str, size: int) -> tuple[int, int]:
    """The (first, last) byte positions a satisfiable ``bytes=`` spec selects."""
    first_text, last_text = spec.split("=", 1)[1].split("-")
    if not first_text:
        return max(size - int(last_text), 0), size - 1
    first = int(first_text)
    last = size - 1 if not last_text else min(int(last_text), size - 1)
    return first, last


S = DEFAULT_STRIPE
OBJECT_SIZE = 3 * S + 12345
RANGES = {
    "first-byte": "bytes=0-0",
    "start": "bytes=0-99",
    "middle": "bytes=1000-200000",
    "suffix": "bytes=-500",
    "suffix-longer-than-object": f"bytes=-{OBJECT_SIZE + 10}",
    "open-ended": f"bytes={2 * S + 7}-",
    "across-stripe": f"bytes={S - 10}-{S + 9}",
    "across-two-stripes": f"bytes={S - 1}-{2 * S}",
    "exact-stripe": f"bytes={S}-{2 * S - 1}",
    "last-byte": f"bytes={OBJECT_SIZE - 1}-{OBJECT_SIZE - 1}",
    "last-byte-suffix": "bytes=-1",
    "end-past-size": f"bytes={OBJECT_SIZE - 5}-{OBJECT_SIZE + 100}",
    "whole": f"bytes=0-{OBJECT_SIZE - 1}",
}


@pytest.mark.parametrize("spec", RANGES.values(), ids=list(RANGES))
def test_range(http: Client, ranged: bytes, spec: str) -> None:
    assert len(ranged) == OBJECT_SIZE
    first, last = resolve(spec, len(ranged))
    assert_range(http.get("ranges/object", {"Range": spec}), ranged, first, last)


@pytest.mark.parametrize(
    "spec",
    [f"bytes={OBJECT_SIZE}-", f"bytes={OBJECT_SIZE + 1000}-{OBJECT_SIZE + 2000}", "bytes=-0"],
    ids=["start-at-size", "start-past-size", "empty-suffix"],
)
def test_unsatisfiable_range(http: Client, ranged: bytes, spec: str) -> None:
    response = http.get("ranges/object", {"Range": spec})
    assert response.status == 416
    assert response.header("Content-Range") == f"bytes */{len(ranged)}"
    assert error_code(response) == "range_not_satisfiable"


@pytest.mark.parametrize(
    "spec", ["bytes=10-5", "items=0-10", "bytes=0-1,5-6", "bytes=-", "bytes=a-b"]
)
def test_ignored_range_serves_whole_object(http: Client, ranged: bytes, spec: str) -> None:
    """Range headers the server may ignore (RFC 9110) give the whole object with 200."""
    response = http.get("ranges/object", {"Range": spec})
    assert response.status == 200
    assert response.header("Content-Range") is None
    assert response.body == ranged


def test_range_on_empty_object(http: Client) -> None:
    assert http.put("ranges/empty", b"").status == 201
    response = http.get("ranges/empty", {"Range": "bytes=0-"})
    assert response.status == 416
    assert response.header("Content-Range") == "bytes */0"
    assert http.get("ranges/empty", {"Range": "bytes=-1"}).status == 416
    whole = http.get("ranges/empty")
    assert whole.status == 200
    assert whole.body == b""


def test_head_with_range(http: Client, ranged: bytes) -> None:
    head = http.head("ranges/object", {"Range": f"bytes={S - 2}-{S + 1}"})
    assert head.status == 206
    assert head.body == b""
    assert head.header("Content-Range") == f"bytes {S - 2}-{S + 1}/{len(ranged)}"
    assert head.header("Content-Length") == "4"
    assert head.header("ETag") == f'"{md5_hex(ranged)}"'

    missed = http.head("ranges/object", {"Range": f"bytes={len(ranged)}-"})
    assert missed.status == 416
    assert missed.body == b""
    assert missed.header("Content-Range") == f"bytes */{len(ranged)}"


@pytest.fixture(scope="module")
def segmented(small_http: Client) -> bytes:
    """Three segments and a bit on the small-stripe cluster."""
    data = random_bytes(3 * SMALL_SEGMENT + 777)
    assert small_http.put("ranges/segmented", data).status == 201
    return data


SEGMENT_RANGES = {
    "across-segment": (SMALL_SEGMENT - 10, SMALL_SEGMENT + 9),
    "segment-last-byte": (SMALL_SEGMENT - 1, SMALL_SEGMENT - 1),
    "segment-first-byte": (SMALL_SEGMENT, SMALL_SEGMENT),
    "across-two-segments": (SMALL_SEGMENT - 1, 2 * SMALL_SEGMENT),
    "second-segment-stripes": (SMALL_SEGMENT + SMALL_STRIPE - 3, SMALL_SEGMENT + 3 * SMALL_STRIPE),
    "into-last-segment": (3 * SMALL_SEGMENT - 5, 3 * SMALL_SEGMENT + 776),
}


@pytest.mark.parametrize("bounds", SEGMENT_RANGES.values(), ids=list(SEGMENT_RANGES))
def test_range_across_segments(
    small_http: Client, segmented: bytes, bounds: tuple[int, int]
) -> None:
    first, last = bounds
    response = small_http.get("ranges/segmented", {"Range": f"bytes={first}-{last}"})
    assert_range(response, segmented, first, last)


def test_open_ended_range_over_segments(small_http: Client, segmented: bytes) -> None:
    start = SMALL_SEGMENT // 2
    response = small_http.get("ranges/segmented", {"Range": f"bytes={start}-"})
    assert_range(response, segmented, start, len(segmented) - 1)


# -- delete ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES)
def test_delete_removes_object_and_chunks(cluster: LocalCluster, http: Client, policy: str) -> None:
    key = f"delete/{policy}"
    before = chunk_files(cluster)
    assert http.put(key, random_bytes(MIB + 5), {"X-Redundancy": policy}).status == 201
    files = chunk_files(cluster) - before
    assert len(files) == SHARDS[policy]

    deleted = http.delete(key)
    assert deleted.status == 204
    assert deleted.body == b""

    missing = http.get(key)
    assert missing.status == 404
    assert error_code(missing) == "object_not_found"
    assert http.head(key).status == 404
    again = http.delete(key)
    assert again.status == 404
    assert error_code(again) == "object_not_found"
    assert key not in http.list_keys("delete/")

    assert wait_until(lambda: not (files & chunk_files(cluster)), 5.0), files & chunk_files(cluster)


def test_key_can_be_created_again_after_delete(http: Client) -> None:
    key = "delete/recreate"
    assert http.put(key, b"one").status == 201
    assert http.delete(key).status == 204
    created = http.put(key, b"two", method="POST")
    assert created.status == 201
    assert http.get(key).body == b"two"


# -- listing ---------------------------------------------------------------------------------

LIST_KEYS = [
    "list/a",
    "list/a b",
    "list/a/b",
    "list/a/c",
    "list/a%20b",
    "list/b",
    "list/Z",
    "list/é",
    unicodedata.normalize("NFD", "list/é"),
    "list/日本/語",
    "list/😀",
    "list/~tilde",
    "list/q?x=1&y=2",
    "list/hash#frag",
    "list/plus+sign",
]


def utf8_order(keys: list[str]) -> list[str]:
    return sorted(keys, key=lambda k: k.encode("utf-8"))


@pytest.fixture(scope="module")
def listed(http: Client) -> list[str]:
    for index, key in enumerate(LIST_KEYS):
        response = http.put(key, f"body {index}".encode(), {"Content-Type": "text/plain"})
        assert response.status == 201, (key, response.body)
        assert response.json()["key"] == key
    return utf8_order(LIST_KEYS)


def test_listing_in_byte_order(http: Client, listed: list[str]) -> None:
    page = http.list_page("list/")
    assert [entry["key"] for entry in page["objects"]] == listed
    assert page["truncated"] is False
    assert page["next_after"] is None
    for entry in page["objects"]:
        index = LIST_KEYS.index(entry["key"])
        body = f"body {index}".encode()
        assert entry["size"] == len(body)
        assert entry["md5"] == md5_hex(body)
        assert entry["etag"] == f'"{md5_hex(body)}"'
        assert entry["content_type"] == "text/plain"
        # Small bodies under the default policy are kept inline.
        assert entry["redundancy"] == "inline"


def test_listed_keys_read_back(http: Client, listed: list[str]) -> None:
    for key in listed:
        response = http.get(key)
        assert response.status == 200, key
        assert response.body == f"body {LIST_KEYS.index(key)}".encode(), key


@pytest.mark.parametrize("limit", [1, 2, 3, 7])
def test_listing_pagination(http: Client, listed: list[str], limit: int) -> None:
    seen: list[str] = []
    after = ""
    pages = 0
    while True:
        page = http.list_page("list/", after, limit)
        keys = [entry["key"] for entry in page["objects"]]
        pages += 1
        assert 1 <= len(keys) <= limit, page
        seen.extend(keys)
        if not page["truncated"]:
            assert page["next_after"] is None
            break
        assert len(keys) == limit
        assert page["next_after"] == keys[-1]
        after = page["next_after"]
        assert pages <= len(listed)
    assert seen == listed
    assert pages == -(-len(listed) // limit)


def test_listing_prefix_and_after(http: Client, listed: list[str]) -> None:
    def keys(prefix: str = "", after: str = "") -> list[str]:
        return [entry["key"] for entry in http.list_page(prefix, after)["objects"]]

    assert keys("list/a/") == ["list/a/b", "list/a/c"]
    assert keys("list/a") == [k for k in listed if k.startswith("list/a")]
    assert keys("list/日") == ["list/日本/語"]
    assert keys("list/é") == ["list/é"]
    assert keys("list/nothing-here") == []
    assert keys("list/", "list/a/b") == [k for k in listed if k.encode() > b"list/a/b"]
    assert keys("list/", "list/a/") == [k for k in listed if k.encode() > b"list/a/"]
    assert keys("list/", listed[-1]) == []
    # after sorts before the prefix: the prefix still bounds the listing.
    assert keys("list/a/", "list/") == ["list/a/b", "list/a/c"]


# -- content type and chunked uploads --------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    ["text/plain; charset=utf-8", "image/png", "application/vnd.example+json; v=2"],
)
def test_content_type_preserved(http: Client, content_type: str) -> None:
    key = f"ctype/{content_type}"
    created = http.put(key, b"typed", {"Content-Type": content_type})
    assert created.status == 201
    assert created.json()["content_type"] == content_type
    assert http.get(key).header("Content-Type") == content_type
    assert http.head(key).header("Content-Type") == content_type


def test_default_content_type(http: Client) -> None:
    created = http.put("ctype/none", b"untyped")
    assert created.status == 201
    assert created.json()["content_type"] == "application/octet-stream"
    assert http.get("ctype/none").header("Content-Type") == "application/octet-stream"


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
@pytest.mark.parametrize("chunked", [False, True], ids=["sized", "chunked"])
def test_encoded_bodies_are_stored_as_sent(http: Client, encoding: str, chunked: bool) -> None:
    """A body with a Content-Encoding is the object's bytes, not something to inflate: what
    was sent comes back byte for byte, with the MD5 of what was sent."""
    inflated = b"diststorage " * 4096
    sent = gzip.compress(inflated) if encoding == "gzip" else zlib.compress(inflated)
    body: bytes | Iterator[bytes] = iter([sent[:100], sent[100:]]) if chunked else sent
    key = f"encoded/{encoding}/{chunked}"
    created = http.put(key, body, {"Content-Encoding": encoding})
    assert created.status == 201, created.body
    assert created.json()["md5"] == md5_hex(sent)
    assert created.json()["size"] == len(sent)
    assert http.get(key).body == sent


def pieces(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    offset = 0
    index = 0
    while offset < len(data):
        size = sizes[index % len(sizes)]
        yield data[offset : offset + size]
        offset += size
        index += 1


@pytest.mark.parametrize(
    "size", [0, 1, 100_000, 2 * DEFAULT_STRIPE + 333], ids=["empty", "1", "100k", "multi-stripe"]
)
def test_chunked_upload(cluster: LocalCluster, http: Client, size: int) -> None:
    data = random_bytes(size)
    key = f"chunked/{size}"
    before = chunk_files(cluster)
    created = http.put(key, pieces(data, [1, 65536, 999_999, 7]), {"X-Redundancy": "ec:4+2"})
    assert_created(created, key, size, md5_hex(data), "ec:4+2")
    got = http.get(key)
    assert got.status == 200
    assert got.header("Content-Length") == str(size)
    assert got.body == data
    new_files = chunk_files(cluster) - before
    assert len(new_files) == (0 if size == 0 else 6)


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_creates_of_one_key(cluster: LocalCluster, http: Client) -> None:
    """Several POSTs race for one key: exactly one wins, the rest get 409, nothing leaks."""
    key = "race/create"
    bodies = [random_bytes(MIB + i) for i in range(4)]
    before = chunk_files(cluster)
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: http.put(key, b, method="POST"), bodies))
    statuses = sorted(r.status for r in responses)
    assert statuses == [201, 409, 409, 409], [(r.status, r.body[:200]) for r in responses]
    winner = bodies[[r.status for r in responses].index(201)]
    assert http.get(key).body == winner
    # Only the winner's chunks stay.
    assert wait_until(lambda: len(chunk_files(cluster) - before) == 6, 10.0), len(
        chunk_files(cluster) - before
    )


def test_concurrent_replaces_of_one_key(cluster: LocalCluster, http: Client) -> None:
    """Several PUTs race: all succeed, one version is left whole, the others' chunks go."""
    key = "race/replace"
    bodies = [random_bytes(2 * MIB + i) for i in range(4)]
    before = chunk_files(cluster)
    with ThreadPoolExecutor(len(bodies)) as pool:
        responses = list(pool.map(lambda b: http.put(key, b), bodies))
    assert [r.status for r in responses] == [201] * 4, [r.body[:200] for r in responses]
    got = http.get(key)
    assert got.status == 200
    assert got.body in bodies
    assert got.header("ETag") == f'"{md5_hex(got.body)}"'
    assert http.list_keys("race/replace") == [key]
    assert wait_until(lambda: len(chunk_files(cluster) - before) == 6, 10.0), len(
        chunk_files(cluster) - before
    )


@pytest.mark.parametrize("change", ["PUT", "DELETE"])
def test_download_outlives_replace_and_delete(
    small_cluster: LocalCluster, small_http: Client, change: str
) -> None:
    """A download that started before the key was replaced or deleted gets the old bytes whole."""
    key = f"outlive/{change}"
    old = random_bytes(3 * SMALL_SEGMENT + 5)
    assert small_http.put(key, old).status == 201
    old_chunks = {c.path for c in object_chunks(small_cluster, key)}
    assert len(old_chunks) == 4 * 6  # three segments and a bit: four

    with small_http.stream("GET", f"/{key}") as response:
        assert response.status == 200
        head = response.read(MIB)
        if change == "PUT":
            assert small_http.put(key, b"new version").status == 201
        else:
            assert small_http.delete(key).status == 204
        time.sleep(2.0)  # room for the janitor to (wrongly) delete chunks still being read
        rest = response.read()
    assert md5_hex(head + rest) == md5_hex(old)
    # Once the download is over, the old chunks go.
    assert wait_until(lambda: not (old_chunks & chunk_files(small_cluster)), 10.0)


def test_small_objects_under_the_default_policy_become_replicas(
    cluster: LocalCluster, http: Client
) -> None:
    """A small object stored without X-Redundancy survives the same two lost nodes as
    ec:4+2, on three nodes; a larger one, or one that asks, gets what it asked for."""
    small = random_bytes(128 * 1024)
    assert_created(
        http.put("small/default", small), "small/default", len(small), md5_hex(small), "replicate:3"
    )
    assert len({c.node for c in object_chunks(cluster, "small/default")}) == 3
    asked = http.put("small/asked", small, {"X-Redundancy": "ec:4+2"})
    assert_created(asked, "small/asked", len(small), md5_hex(small), "ec:4+2")
    assert len({c.node for c in object_chunks(cluster, "small/asked")}) == 6
    larger = random_bytes(128 * 1024 + 1)
    assert_created(
        http.put("small/larger", larger), "small/larger", len(larger), md5_hex(larger), "ec:4+2"
    )
    assert http.get("small/default").body == small
