"""ListObjects V1 and V2 through boto3 against a real cluster (S3.md pitfalls 9 and 10): keys
that URL and XML handling get wrong come back exactly, common prefixes share max-keys with
objects, a page may end on a common prefix and the next one skips it whole, start-after and
tokens, max-keys=0, delimiters other than ``/``, boto3's paginators, and the raw
``encoding-type=url`` answer botocore decodes with ``unquote_plus``.

Most objects are seeded in the bucket ``default`` through the native API (each test under its
own prefix), once per module; one test lists a bucket of its own filled by boto3's PutObject.
"""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import TEST_ROOT, error_code_of, gateway_client, s3_client, status_of

from diststorage.client import Client, Credentials
from diststorage.local import LocalCluster

BUCKET = "default"
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# Every key S3.md pitfall 10 names, plus a carriage return (pitfall 12), under "odd/".
ODD = ["a b", "a+b", "100%", "한글/x", "dir/", "//x", "a/../b", "cr\rlf", "dir/in"]
ODD_KEYS = sorted((f"odd/{k}" for k in ODD), key=lambda k: k.encode())
# For pagination: plain keys and folders interleaved under "mix/".
MIX_KEYS = sorted(
    [f"mix/{c}" for c in ("a", "c", "e", "g")]
    + [f"mix/{c}/{i}" for c in ("b", "d", "f") for i in range(3)],
)

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster


@pytest.fixture(scope="module")
def http(cluster: LocalCluster) -> Client:
    return gateway_client(cluster.url)


@pytest.fixture(scope="module")
def seeded(http: Client) -> None:
    for key in [*ODD_KEYS, *MIX_KEYS]:
        assert http.put(key, key.encode()).status == 201, key
    for key in ("dl/x-1-a", "dl/x-1-b", "dl/y--2", "dl/y--3", "dl/z"):
        assert http.put(key, b"d").status == 201


def keys_of(page: dict[str, Any]) -> list[str]:
    return [entry["Key"] for entry in page.get("Contents", [])]


def prefixes_of(page: dict[str, Any]) -> list[str]:
    return [entry["Prefix"] for entry in page.get("CommonPrefixes", [])]


def raw_body(s3: Any, operation: str) -> list[bytes]:
    """The XML bodies the client receives for ``operation``, as they came."""
    bodies: list[bytes] = []
    s3.meta.events.register(
        f"after-call.s3.{operation}",
        lambda http_response, **_: bodies.append(http_response.content),
    )
    return bodies


# -- keys come back as they are --------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_odd_keys_come_back_exactly_in_both_versions(s3: Any) -> None:
    v2 = s3.list_objects_v2(Bucket=BUCKET, Prefix="odd/")
    assert keys_of(v2) == ODD_KEYS
    assert v2["KeyCount"] == len(ODD_KEYS) and v2["IsTruncated"] is False
    v1 = s3.list_objects(Bucket=BUCKET, Prefix="odd/")
    assert keys_of(v1) == ODD_KEYS and v1["IsTruncated"] is False


@pytest.mark.usefixtures("seeded")
def test_url_encoding_is_what_botocore_decodes(cluster: LocalCluster) -> None:
    s3 = s3_client(cluster)
    bodies = raw_body(s3, "ListObjectsV2")
    # Asked for explicitly, botocore leaves the answer encoded: what the server wrote.
    page = s3.list_objects_v2(Bucket=BUCKET, Prefix="odd/a+", EncodingType="url", Delimiter="/")
    assert page["Prefix"] == "odd/a%2B" and page["EncodingType"] == "url"
    assert keys_of(page) == ["odd/a%2Bb"]
    encoded = s3.list_objects_v2(Bucket=BUCKET, Prefix="odd/", EncodingType="url")
    assert keys_of(encoded) == [
        "odd///x",
        "odd/100%25",
        "odd/a%20b",
        "odd/a%2Bb",
        "odd/a/../b",
        "odd/cr%0Dlf",
        "odd/dir/",
        "odd/dir/in",
        "odd/%ED%95%9C%EA%B8%80/x",
    ]
    root = ET.fromstring(bodies[-1])
    assert root.findtext(S3_NS + "EncodingType") == "url"
    unencoded = s3.list_objects_v2(Bucket=BUCKET, Prefix="odd/a+")
    # botocore asked for the encoding itself and decoded the answer with unquote_plus.
    assert keys_of(unencoded) == ["odd/a+b"]
    sent = ET.fromstring(bodies[-1]).find(S3_NS + "Contents")
    assert sent is not None and sent.findtext(S3_NS + "Key") == "odd/a%2Bb"


@pytest.mark.usefixtures("seeded")
def test_without_url_encoding_a_carriage_return_is_escaped(cluster: LocalCluster) -> None:
    """An XML parser reads a raw \r as \n: the listing must write &#13; (pitfall 12)."""
    s3 = s3_client(cluster)

    def drop_encoding(request: Any, **_: Any) -> None:
        request.url = request.url.replace("encoding-type=url", "").replace("?&", "?")

    s3.meta.events.register("before-sign.s3.ListObjectsV2", drop_encoding)
    bodies = raw_body(s3, "ListObjectsV2")
    s3.list_objects_v2(Bucket=BUCKET, Prefix="odd/cr")
    assert b"<Key>odd/cr&#13;lf</Key>" in bodies[0]
    root = ET.fromstring(bodies[0])
    assert root.find(S3_NS + "EncodingType") is None
    assert [k.text for k in root.iter(S3_NS + "Key")] == ["odd/cr\rlf"]


@pytest.mark.usefixtures("seeded")
def test_a_delimiter_rolls_up_common_prefixes(s3: Any) -> None:
    page = s3.list_objects_v2(Bucket=BUCKET, Prefix="odd/", Delimiter="/")
    assert prefixes_of(page) == ["odd//", "odd/a/", "odd/dir/", "odd/한글/"]
    assert keys_of(page) == ["odd/100%", "odd/a b", "odd/a+b", "odd/cr\rlf"]
    assert page["KeyCount"] == 8 and page["Delimiter"] == "/"
    v1 = s3.list_objects(Bucket=BUCKET, Prefix="odd/", Delimiter="/")
    assert prefixes_of(v1) == prefixes_of(page) and keys_of(v1) == keys_of(page)
    inside = s3.list_objects_v2(Bucket=BUCKET, Prefix="odd/dir/", Delimiter="/")
    assert keys_of(inside) == ["odd/dir/", "odd/dir/in"] and prefixes_of(inside) == []


@pytest.mark.usefixtures("seeded")
def test_delimiters_other_than_slash(s3: Any) -> None:
    dash = s3.list_objects_v2(Bucket=BUCKET, Prefix="dl/", Delimiter="-")
    assert prefixes_of(dash) == ["dl/x-", "dl/y-"] and keys_of(dash) == ["dl/z"]
    double = s3.list_objects(Bucket=BUCKET, Prefix="dl/", Delimiter="--")
    assert prefixes_of(double) == ["dl/y--"]
    assert keys_of(double) == ["dl/x-1-a", "dl/x-1-b", "dl/z"]
    letter = s3.list_objects_v2(Bucket=BUCKET, Prefix="dl/x-1-", Delimiter="b")
    assert prefixes_of(letter) == ["dl/x-1-b"] and keys_of(letter) == ["dl/x-1-a"]


# -- pages -----------------------------------------------------------------------------------

MIX_ENTRIES = ["mix/a", "mix/b/", "mix/c", "mix/d/", "mix/e", "mix/f/", "mix/g"]


def walk_v2(s3: Any, **asked: Any) -> list[dict[str, Any]]:
    pages = [s3.list_objects_v2(Bucket=BUCKET, **asked)]
    while pages[-1]["IsTruncated"]:
        token = pages[-1]["NextContinuationToken"]
        pages.append(s3.list_objects_v2(Bucket=BUCKET, ContinuationToken=token, **asked))
    return pages


@pytest.mark.usefixtures("seeded")
def test_common_prefixes_count_toward_max_keys(s3: Any) -> None:
    pages = walk_v2(s3, Prefix="mix/", Delimiter="/", MaxKeys=2)
    assert [p["KeyCount"] for p in pages] == [2, 2, 2, 1]
    entries = [sorted(keys_of(p) + prefixes_of(p)) for p in pages]
    assert entries == [["mix/a", "mix/b/"], ["mix/c", "mix/d/"], ["mix/e", "mix/f/"], ["mix/g"]]
    assert all(p["MaxKeys"] == 2 for p in pages)
    assert "NextContinuationToken" not in pages[-1]


@pytest.mark.usefixtures("seeded")
def test_a_page_ending_on_a_prefix_continues_past_it(s3: Any) -> None:
    first = s3.list_objects_v2(Bucket=BUCKET, Prefix="mix/", Delimiter="/", MaxKeys=2)
    assert prefixes_of(first) == ["mix/b/"]  # the page's last entry is the prefix
    rest = s3.list_objects_v2(
        Bucket=BUCKET,
        Prefix="mix/",
        Delimiter="/",
        ContinuationToken=first["NextContinuationToken"],
    )
    assert keys_of(rest) == ["mix/c", "mix/e", "mix/g"]
    assert prefixes_of(rest) == ["mix/d/", "mix/f/"]
    assert rest["ContinuationToken"] == first["NextContinuationToken"]
    v1 = s3.list_objects(Bucket=BUCKET, Prefix="mix/", Delimiter="/", MaxKeys=2)
    assert v1["NextMarker"] == "mix/b/"
    after = s3.list_objects(Bucket=BUCKET, Prefix="mix/", Delimiter="/", Marker=v1["NextMarker"])
    assert keys_of(after) == keys_of(rest) and prefixes_of(after) == prefixes_of(rest)


@pytest.mark.usefixtures("seeded")
def test_start_after_and_a_token_together(s3: Any) -> None:
    started = s3.list_objects_v2(Bucket=BUCKET, Prefix="mix/", StartAfter="mix/c", MaxKeys=3)
    assert keys_of(started) == ["mix/d/0", "mix/d/1", "mix/d/2"]
    assert started["StartAfter"] == "mix/c"
    token = started["NextContinuationToken"]
    # The token wins over StartAfter, which is echoed as sent.
    resumed = s3.list_objects_v2(
        Bucket=BUCKET, Prefix="mix/", StartAfter="mix/a", ContinuationToken=token, MaxKeys=3
    )
    assert keys_of(resumed) == ["mix/e", "mix/f/0", "mix/f/1"]
    assert resumed["StartAfter"] == "mix/a"
    assert started["KeyCount"] == resumed["KeyCount"] == 3


@pytest.mark.usefixtures("seeded")
def test_max_keys_zero_lists_nothing(s3: Any) -> None:
    v2 = s3.list_objects_v2(Bucket=BUCKET, Prefix="mix/", MaxKeys=0)
    assert v2["KeyCount"] == 0 and v2["MaxKeys"] == 0
    assert "Contents" not in v2 and "CommonPrefixes" not in v2
    assert v2["IsTruncated"] is False
    v1 = s3.list_objects(Bucket=BUCKET, Prefix="mix/", Delimiter="/", MaxKeys=0)
    assert "Contents" not in v1 and v1["MaxKeys"] == 0


@pytest.mark.usefixtures("seeded")
def test_v1_names_a_next_marker_only_with_a_delimiter(s3: Any) -> None:
    plain = s3.list_objects(Bucket=BUCKET, Prefix="mix/", MaxKeys=2)
    assert plain["IsTruncated"] is True and "NextMarker" not in plain
    assert keys_of(plain) == MIX_KEYS[:2]
    following = s3.list_objects(Bucket=BUCKET, Prefix="mix/", Marker=keys_of(plain)[-1])
    assert following["Marker"] == "mix/b/0"
    assert keys_of(following) == MIX_KEYS[2:]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("delimiter", [None, "/"])
def test_boto3_paginators_walk_every_entry(s3: Any, delimiter: str | None) -> None:
    asked: dict[str, Any] = {"Bucket": BUCKET, "Prefix": "mix/"}
    if delimiter is not None:
        asked["Delimiter"] = delimiter
    expected = MIX_ENTRIES if delimiter else MIX_KEYS
    for operation in ("list_objects_v2", "list_objects"):
        pages = list(
            s3.get_paginator(operation).paginate(**asked, PaginationConfig={"PageSize": 2})
        )
        assert all(len(keys_of(p)) + len(prefixes_of(p)) <= 2 for p in pages)
        found = [e for p in pages for e in keys_of(p) + prefixes_of(p)]
        assert sorted(found) == expected, operation


@pytest.mark.usefixtures("seeded")
def test_paginating_odd_keys_one_at_a_time(s3: Any) -> None:
    """Tokens and markers that hold the odd keys themselves (NextMarker is URL-encoded)."""
    for operation in ("list_objects_v2", "list_objects"):
        pages = s3.get_paginator(operation).paginate(
            Bucket=BUCKET, Prefix="odd/", Delimiter="/", PaginationConfig={"PageSize": 1}
        )
        found = [e for p in pages for e in keys_of(p) + prefixes_of(p)]
        assert sorted(found, key=str.encode) == [
            "odd//",
            "odd/100%",
            "odd/a b",
            "odd/a+b",
            "odd/a/",
            "odd/cr\rlf",
            "odd/dir/",
            "odd/한글/",
        ]


# -- what each entry says --------------------------------------------------------------------


@pytest.mark.usefixtures("seeded")
def test_each_entry_has_what_clients_read(s3: Any) -> None:
    key = "mix/a"
    (entry,) = s3.list_objects_v2(Bucket=BUCKET, Prefix=key, Delimiter="/")["Contents"]
    assert entry["ETag"] == '"' + hashlib.md5(key.encode()).hexdigest() + '"'
    assert entry["Size"] == len(key)
    assert entry["StorageClass"] == "STANDARD"
    assert abs(entry["LastModified"] - datetime.now(UTC)) < timedelta(minutes=5)
    assert "Owner" not in entry
    root_owner = {"ID": TEST_ROOT.access_key_id, "DisplayName": "root"}
    fetched = s3.list_objects_v2(Bucket=BUCKET, Prefix=key, Delimiter="/", FetchOwner=True)
    assert fetched["Contents"][0]["Owner"] == root_owner
    v1 = s3.list_objects(Bucket=BUCKET, Prefix=key, Delimiter="/")
    assert v1["Contents"][0]["Owner"] == root_owner
    assert v1["Name"] == BUCKET and v1["Marker"] == ""


def test_an_empty_listing(s3: Any) -> None:
    page = s3.list_objects_v2(Bucket=BUCKET, Prefix="nothing-here/")
    assert page["KeyCount"] == 0 and "Contents" not in page and page["IsTruncated"] is False
    assert page["Name"] == BUCKET and page["Prefix"] == "nothing-here/"


# -- errors and rights -----------------------------------------------------------------------


def code_of(call: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return status_of(caught.value), error_code_of(caught.value)


def test_listing_errors(s3: Any) -> None:
    assert code_of(lambda: s3.list_objects_v2(Bucket="no-such-bucket")) == (404, "NoSuchBucket")
    assert code_of(lambda: s3.list_objects(Bucket="no-such-bucket")) == (404, "NoSuchBucket")
    assert code_of(lambda: s3.list_objects_v2(Bucket=BUCKET, ContinuationToken="not-a-token!")) == (
        400,
        "InvalidRequest",
    )
    assert code_of(lambda: s3.list_objects_v2(Bucket=BUCKET, MaxKeys=-1)) == (
        400,
        "InvalidRequest",
    )


@pytest.mark.usefixtures("seeded")
def test_listing_needs_a_read_grant(cluster: LocalCluster, http: Client) -> None:
    made = http.accounts.create_key("list-reader", can_create_buckets=False)
    reader = Credentials(made["access_key_id"], made["secret_access_key"])
    s3 = s3_client(cluster, reader)
    assert code_of(lambda: s3.list_objects_v2(Bucket=BUCKET)) == (403, "AccessDenied")
    http.accounts.allow(BUCKET, reader.access_key_id, read=True)
    assert keys_of(s3.list_objects_v2(Bucket=BUCKET, Prefix="odd/")) == ODD_KEYS


def test_a_bucket_of_its_own_lists_and_empties(s3: Any) -> None:
    s3.create_bucket(Bucket="listed-apart")
    for key in ODD:
        s3.put_object(Bucket="listed-apart", Key=key, Body=key.encode())
    page = s3.list_objects_v2(Bucket="listed-apart")
    assert keys_of(page) == sorted(ODD, key=str.encode)
    assert all(entry["ChecksumAlgorithm"] == ["CRC32"] for entry in page["Contents"])
    assert {e["Key"]: e["Size"] for e in page["Contents"]} == {k: len(k.encode()) for k in ODD}
    assert keys_of(s3.list_objects_v2(Bucket=BUCKET, Prefix="a b")) == []  # buckets apart
    answer = s3.delete_objects(
        Bucket="listed-apart", Delete={"Objects": [{"Key": k} for k in ODD], "Quiet": True}
    )
    assert "Errors" not in answer
    assert "Contents" not in s3.list_objects_v2(Bucket="listed-apart")
    s3.delete_bucket(Bucket="listed-apart")
