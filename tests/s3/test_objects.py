"""PutObject, GetObject, HeadObject and DeleteObject through boto3, over http and https:
stored headers and metadata back, ranges and part numbers, conditional reads and writes
(with a race of two creates), gzip bodies byte-exact, ``response-*`` overrides on a presigned
URL, and a 20 MiB object downloaded by s3transfer's ranged, checksum-validating GETs."""

from __future__ import annotations

import gzip
import hashlib
import ssl
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import TEST_ROOT, ClusterOptions, error_code_of, random_bytes, s3_client, status_of
from object_support import BUCKET, CHUNKED_BYTES, MIB, checksum_b64, quoted_md5

from diststorage.local import LocalCluster

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster


@pytest.fixture(scope="module", params=[False, True], ids=["http", "https"])
def cluster_options(request: pytest.FixtureRequest) -> ClusterOptions:
    return ClusterOptions(tls=request.param)


def headers_of(response: dict[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = response["ResponseMetadata"]["HTTPHeaders"]
    return headers


def error_headers(error: ClientError) -> dict[str, str]:
    return headers_of(error.response)


# -- put, get, head, delete ------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 100, CHUNKED_BYTES], ids=["empty", "inline", "chunks"])
def test_an_object_comes_back_with_its_headers_and_metadata(s3: Any, size: int) -> None:
    data = random_bytes(size)
    key = f"objects/round-trip-{size}"
    put = s3.put_object(
        Bucket=BUCKET,
        Key=key,
        Body=data,
        ContentType="text/x-test",
        ContentDisposition='attachment; filename="a.txt"',
        ContentLanguage="de",
        CacheControl="max-age=60",
        Metadata={"Colour": "blue", "mtime": "1700000000"},
    )
    assert put["ETag"] == quoted_md5(data)
    got = s3.get_object(Bucket=BUCKET, Key=key)
    assert got["Body"].read() == data
    head = s3.head_object(Bucket=BUCKET, Key=key)
    for answer in (got, head):
        assert answer["ETag"] == quoted_md5(data)
        assert answer["ContentLength"] == size
        assert answer["ContentType"] == "text/x-test"
        assert answer["ContentDisposition"] == 'attachment; filename="a.txt"'
        assert answer["ContentLanguage"] == "de"
        assert answer["CacheControl"] == "max-age=60"
        assert answer["Metadata"] == {"colour": "blue", "mtime": "1700000000"}
        assert answer["AcceptRanges"] == "bytes"
        assert abs(answer["LastModified"] - datetime.now(UTC)) < timedelta(minutes=2)
    s3.delete_object(Bucket=BUCKET, Key=key)


def test_an_object_without_a_content_type_gets_s3s_default(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="objects/no-type", Body=b"x")
    assert s3.head_object(Bucket=BUCKET, Key="objects/no-type")["ContentType"] == (
        "binary/octet-stream"
    )


def test_a_put_replaces_the_object_and_its_metadata(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="objects/replaced", Body=b"one", Metadata={"a": "1"})
    s3.put_object(Bucket=BUCKET, Key="objects/replaced", Body=b"two")
    got = s3.get_object(Bucket=BUCKET, Key="objects/replaced")
    assert got["Body"].read() == b"two"
    assert got["Metadata"] == {}


def test_a_missing_key_is_no_such_key_and_its_head_a_bodiless_404(s3: Any) -> None:
    with pytest.raises(ClientError) as got:
        s3.get_object(Bucket=BUCKET, Key="objects/never-written")
    assert error_code_of(got.value) == "NoSuchKey"
    assert status_of(got.value) == 404
    with pytest.raises(ClientError) as head:
        s3.head_object(Bucket=BUCKET, Key="objects/never-written")
    assert status_of(head.value) == 404


def test_delete_answers_204_whether_or_not_the_key_exists(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="objects/deleted", Body=b"bye")
    first = s3.delete_object(Bucket=BUCKET, Key="objects/deleted")
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 204
    with pytest.raises(ClientError) as gone:
        s3.head_object(Bucket=BUCKET, Key="objects/deleted")
    assert status_of(gone.value) == 404
    again = s3.delete_object(Bucket=BUCKET, Key="objects/deleted")
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_user_metadata_over_2_kib_is_refused_and_stores_nothing(s3: Any) -> None:
    with pytest.raises(ClientError) as refused:
        s3.put_object(
            Bucket=BUCKET, Key="objects/fat-meta", Body=b"x", Metadata={"big": "v" * 2100}
        )
    assert status_of(refused.value) == 400
    assert error_code_of(refused.value) == "MetadataTooLarge"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key="objects/fat-meta")


def test_a_content_type_wider_than_the_metadata_keeps_stores_nothing(s3: Any) -> None:
    with pytest.raises(ClientError) as refused:
        s3.put_object(
            Bucket=BUCKET, Key="objects/wide-type", Body=b"x", ContentType="a/" + "x" * 300
        )
    assert status_of(refused.value) == 400
    assert error_code_of(refused.value) == "InvalidRequest"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key="objects/wide-type")


def test_a_key_with_line_breaks_is_stored_and_served(s3: Any) -> None:
    key = "objects/line\nbreak\r\nx"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"two lines")
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"two lines"
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="objects/line")
    assert [entry["Key"] for entry in listed["Contents"]] == [key]
    s3.delete_object(Bucket=BUCKET, Key=key)


@pytest.mark.parametrize(
    ("key", "code"),
    [("objects/bell\x07", "InvalidRequest"), ("k" * 1025, "KeyTooLongError")],
    ids=["xml-illegal", "too-long"],
)
def test_a_key_no_listing_could_carry_is_refused(s3: Any, key: str, code: str) -> None:
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"x")
    assert status_of(refused.value) == 400
    assert error_code_of(refused.value) == code


def test_a_gzip_body_is_stored_and_served_byte_exact(s3: Any) -> None:
    """aiohttp would inflate it on the way in if asked to (S3.md pitfall 1)."""
    plain = b"hello, compressed world\n" * 200
    packed = gzip.compress(plain)
    put = s3.put_object(
        Bucket=BUCKET,
        Key="objects/page.txt.gz",
        Body=packed,
        ContentEncoding="gzip",
        ContentType="text/plain",
    )
    assert put["ETag"] == quoted_md5(packed)
    got = s3.get_object(Bucket=BUCKET, Key="objects/page.txt.gz")
    assert got["ContentEncoding"] == "gzip"
    assert got["ETag"] == quoted_md5(packed)
    assert got["Body"].read() == packed
    assert gzip.decompress(packed) == plain


# -- ranges and part numbers -----------------------------------------------------------------

RANGE_DATA = bytes(range(256)) * (CHUNKED_BYTES // 256 + 1)


@pytest.fixture(scope="module")
def ranged(s3: Any) -> bytes:
    s3.put_object(Bucket=BUCKET, Key="objects/ranged", Body=RANGE_DATA)
    return RANGE_DATA


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 10),
        ("bytes=2097150-2097153", 2097150, 2097154),
        ("bytes=1000-", 1000, len(RANGE_DATA)),
        ("bytes=-5", len(RANGE_DATA) - 5, len(RANGE_DATA)),
        (f"bytes=10-{len(RANGE_DATA) + 1000}", 10, len(RANGE_DATA)),
    ],
    ids=["first-ten", "across-stripes", "open-end", "suffix", "end-clamped"],
)
def test_a_range_is_a_206_with_its_content_range(
    s3: Any, ranged: bytes, header: str, start: int, end: int
) -> None:
    got = s3.get_object(Bucket=BUCKET, Key="objects/ranged", Range=header)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes {start}-{end - 1}/{len(ranged)}"
    assert got["ContentLength"] == end - start
    assert got["Body"].read() == ranged[start:end]
    head = s3.head_object(Bucket=BUCKET, Key="objects/ranged", Range=header)
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert head["ContentRange"] == got["ContentRange"]
    assert head["ContentLength"] == end - start


def test_a_range_starting_past_the_end_is_416_naming_the_size(s3: Any, ranged: bytes) -> None:
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=BUCKET, Key="objects/ranged", Range=f"bytes={len(ranged)}-")
    assert status_of(refused.value) == 416
    assert error_code_of(refused.value) == "InvalidRange"
    assert error_headers(refused.value)["content-range"] == f"bytes */{len(ranged)}"


def test_part_one_of_a_simple_object_is_all_of_it(s3: Any, ranged: bytes) -> None:
    got = s3.get_object(Bucket=BUCKET, Key="objects/ranged", PartNumber=1)
    assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert got["ContentRange"] == f"bytes 0-{len(ranged) - 1}/{len(ranged)}"
    assert got["Body"].read() == ranged
    head = s3.head_object(Bucket=BUCKET, Key="objects/ranged", PartNumber=1)
    assert head["ContentRange"] == got["ContentRange"]


def test_a_part_number_past_the_parts_is_invalid_part_number(s3: Any, ranged: bytes) -> None:
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=BUCKET, Key="objects/ranged", PartNumber=2)
    assert status_of(refused.value) == 416
    assert error_code_of(refused.value) == "InvalidPartNumber"


def test_a_part_number_with_a_range_is_refused(s3: Any, ranged: bytes) -> None:
    with pytest.raises(ClientError) as refused:
        s3.get_object(Bucket=BUCKET, Key="objects/ranged", PartNumber=1, Range="bytes=0-1")
    assert status_of(refused.value) == 400


# -- checksums on reads ----------------------------------------------------------------------


def test_the_checksum_comes_back_on_a_full_read_only_when_asked(s3: Any) -> None:
    data = random_bytes(CHUNKED_BYTES)
    s3.put_object(Bucket=BUCKET, Key="objects/summed", Body=data, ChecksumAlgorithm="CRC32C")
    expected = checksum_b64("CRC32C", data)
    enabled = s3.get_object(Bucket=BUCKET, Key="objects/summed", ChecksumMode="ENABLED")
    assert enabled["ChecksumCRC32C"] == expected
    assert headers_of(enabled)["x-amz-checksum-type"] == "FULL_OBJECT"
    assert enabled["Body"].read() == data
    head = s3.head_object(Bucket=BUCKET, Key="objects/summed", ChecksumMode="ENABLED")
    assert head["ChecksumCRC32C"] == expected
    plain = s3.head_object(Bucket=BUCKET, Key="objects/summed")
    assert "x-amz-checksum-crc32c" not in headers_of(plain)


def test_a_206_never_carries_the_full_object_checksum(s3: Any) -> None:
    """botocore validates whatever checksum a response carries (S3.md pitfall 4)."""
    data = random_bytes(CHUNKED_BYTES)
    s3.put_object(Bucket=BUCKET, Key="objects/summed-range", Body=data, ChecksumAlgorithm="CRC32")
    for extra in ({"Range": "bytes=5-99"}, {"PartNumber": 1}):
        got = s3.get_object(
            Bucket=BUCKET, Key="objects/summed-range", ChecksumMode="ENABLED", **extra
        )
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206
        assert not [h for h in headers_of(got) if h.startswith("x-amz-checksum-")]
        assert got["Body"].read() == (data[5:100] if "Range" in extra else data)


def test_a_20_mib_object_downloads_in_ranges_and_validates(
    s3: Any, cluster: LocalCluster, tmp_path: Path
) -> None:
    """s3transfer fetches a large object with ranged GETs in threads, each with checksum mode
    on; then every byte and a few explicit ranges are compared."""
    data = random_bytes(20 * MIB + 123)
    s3.put_object(Bucket=BUCKET, Key="objects/twenty", Body=data, ChecksumAlgorithm="CRC32")
    target = tmp_path / "twenty.bin"
    s3.download_file(BUCKET, "objects/twenty", str(target))
    assert hashlib.md5(target.read_bytes()).hexdigest() == hashlib.md5(data).hexdigest()
    for start, end in ((0, 1), (8 * MIB - 3, 8 * MIB + 3), (20 * MIB, len(data))):
        got = s3.get_object(Bucket=BUCKET, Key="objects/twenty", Range=f"bytes={start}-{end - 1}")
        assert got["Body"].read() == data[start:end]
    whole = s3.get_object(Bucket=BUCKET, Key="objects/twenty", ChecksumMode="ENABLED")
    assert whole["ChecksumCRC32"] == checksum_b64("CRC32", data)
    assert whole["Body"].read() == data


# -- conditional reads -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def conditional(s3: Any) -> dict[str, Any]:
    s3.put_object(Bucket=BUCKET, Key="objects/conditional", Body=b"v1")
    head: dict[str, Any] = s3.head_object(Bucket=BUCKET, Key="objects/conditional")
    return head


LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)
FUTURE = datetime.now(UTC) + timedelta(days=1)


def read_status(s3: Any, method: str, **conditions: Any) -> int:
    call = s3.get_object if method == "GET" else s3.head_object
    try:
        answer = call(Bucket=BUCKET, Key="objects/conditional", **conditions)
    except ClientError as error:
        return status_of(error)
    return int(answer["ResponseMetadata"]["HTTPStatusCode"])


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_conditional_reads_follow_rfc_9110(
    s3: Any, conditional: dict[str, Any], method: str
) -> None:
    etag = conditional["ETag"]
    modified = conditional["LastModified"]
    cases: list[tuple[dict[str, Any], int]] = [
        ({"IfMatch": etag}, 200),
        ({"IfMatch": '"0123"'}, 412),
        ({"IfMatch": "*"}, 200),
        ({"IfNoneMatch": etag}, 304),
        ({"IfNoneMatch": '"0123"'}, 200),
        ({"IfNoneMatch": "*"}, 304),
        ({"IfModifiedSince": modified}, 304),
        ({"IfModifiedSince": LONG_AGO}, 200),
        ({"IfUnmodifiedSince": LONG_AGO}, 412),
        ({"IfUnmodifiedSince": modified}, 200),
        # If-Match that holds overrides a failing If-Unmodified-Since...
        ({"IfMatch": etag, "IfUnmodifiedSince": LONG_AGO}, 200),
        # ...and a failing If-None-Match overrides an If-Modified-Since that holds.
        ({"IfNoneMatch": '"0123"', "IfModifiedSince": FUTURE}, 200),
        ({"IfNoneMatch": etag, "IfModifiedSince": LONG_AGO}, 304),
        ({"IfMatch": '"0123"', "IfNoneMatch": etag}, 412),
    ]
    for conditions, expected in cases:
        assert read_status(s3, method, **conditions) == expected, conditions


def test_a_304_carries_the_etag_and_no_body(
    cluster: LocalCluster, conditional: dict[str, Any]
) -> None:
    url = presigned(cluster, "get_object", Key="objects/conditional")
    request = urllib.request.Request(url, headers={"If-None-Match": conditional["ETag"]})
    with pytest.raises(urllib.error.HTTPError) as answered:
        urllib.request.urlopen(request, timeout=30, context=tls_context(cluster))
    assert answered.value.code == 304
    assert answered.value.headers["ETag"] == conditional["ETag"]
    assert answered.value.read() == b""


# -- conditional writes ----------------------------------------------------------------------


def test_if_none_match_star_creates_only(s3: Any) -> None:
    key = "objects/create-only"
    s3.delete_object(Bucket=BUCKET, Key=key)
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"second", IfNoneMatch="*")
    assert status_of(refused.value) == 412
    assert error_code_of(refused.value) == "PreconditionFailed"
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == b"first"


def test_if_match_writes_only_over_that_etag(s3: Any) -> None:
    key = "objects/if-match"
    first = s3.put_object(Bucket=BUCKET, Key=key, Body=b"first")
    second = s3.put_object(Bucket=BUCKET, Key=key, Body=b"second", IfMatch=first["ETag"])
    with pytest.raises(ClientError) as stale:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"third", IfMatch=first["ETag"])
    assert status_of(stale.value) == 412
    assert s3.get_object(Bucket=BUCKET, Key=key)["ETag"] == second["ETag"]
    with pytest.raises(ClientError) as missing:
        s3.put_object(Bucket=BUCKET, Key="objects/if-match-none", Body=b"x", IfMatch='"abc"')
    assert status_of(missing.value) == 412


@pytest.mark.parametrize("size", [10, CHUNKED_BYTES], ids=["inline", "chunks"])
def test_of_two_racing_creates_exactly_one_wins(cluster: LocalCluster, s3: Any, size: int) -> None:
    key = f"objects/race-{size}"
    bodies = [random_bytes(size), random_bytes(size)]
    clients = [s3_client(cluster, TEST_ROOT) for _ in bodies]
    start = threading.Barrier(len(bodies))
    outcomes: list[int] = [0, 0]

    def create(index: int) -> None:
        start.wait()
        try:
            clients[index].put_object(Bucket=BUCKET, Key=key, Body=bodies[index], IfNoneMatch="*")
            outcomes[index] = 200
        except ClientError as error:
            outcomes[index] = status_of(error)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == [200, 412]
    winner = bodies[outcomes.index(200)]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == winner


# -- presigned URLs with response-* overrides ------------------------------------------------


def tls_context(cluster: LocalCluster) -> ssl.SSLContext | None:
    return None if cluster.tls is None else cluster.tls.client_context()


def presigned(cluster: LocalCluster, operation: str, **params: Any) -> str:
    signer = s3_client(cluster, TEST_ROOT, signature_version="s3v4")
    url: str = signer.generate_presigned_url(
        operation, Params={"Bucket": BUCKET, **params}, ExpiresIn=600
    )
    return url


def test_response_overrides_on_a_presigned_url(cluster: LocalCluster, s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="objects/overridden", Body=b"<p>hi</p>", ContentType="a/b")
    url = presigned(
        cluster,
        "get_object",
        Key="objects/overridden",
        ResponseContentType="text/html",
        ResponseContentDisposition='attachment; filename="x.html"',
        ResponseContentEncoding="identity",
        ResponseContentLanguage="fr",
        ResponseCacheControl="no-cache",
        ResponseExpires=datetime(2030, 1, 1, tzinfo=UTC),
    )
    with urllib.request.urlopen(url, timeout=30, context=tls_context(cluster)) as response:
        assert response.status == 200
        assert response.read() == b"<p>hi</p>"
        headers = response.headers
    assert headers["Content-Type"] == "text/html"
    assert headers["Content-Disposition"] == 'attachment; filename="x.html"'
    assert headers["Content-Encoding"] == "identity"
    assert headers["Content-Language"] == "fr"
    assert headers["Cache-Control"] == "no-cache"
    assert "2030" in headers["Expires"]
    # The stored type is unchanged.
    assert s3.head_object(Bucket=BUCKET, Key="objects/overridden")["ContentType"] == "a/b"
