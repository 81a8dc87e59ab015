"""CopyObject through boto3, over http and https: the metadata directive (COPY keeps the
source's, REPLACE takes the request's, wholly), self-copies, unicode source keys, the
source's conditions and the destination's, a destination checksum, a large source streamed
across, and the READ the caller needs on the source bucket."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from conftest import ClusterOptions, error_code_of, random_bytes, s3_client, status_of
from object_support import (
    BUCKET,
    CHUNKED_BYTES,
    MIB,
    admin_client,
    checksum_b64,
    new_key,
    quoted_md5,
)

from diststorage.local import LocalCluster

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster

LONG_AGO = datetime(2001, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module", params=[False, True], ids=["http", "https"])
def cluster_options(request: pytest.FixtureRequest) -> ClusterOptions:
    return ClusterOptions(tls=request.param)


@pytest.fixture(scope="module")
def source(s3: Any) -> bytes:
    data = random_bytes(CHUNKED_BYTES)
    s3.put_object(
        Bucket=BUCKET,
        Key="copy/source",
        Body=data,
        ContentType="image/x-source",
        ContentDisposition="inline",
        Metadata={"origin": "source", "mtime": "1"},
        ChecksumAlgorithm="SHA256",
    )
    return data


def copy_of(s3: Any, key: str = "copy/source", **params: Any) -> dict[str, Any]:
    result: dict[str, Any] = s3.copy_object(
        Bucket=BUCKET, CopySource={"Bucket": BUCKET, "Key": key}, **params
    )
    return result


def test_copy_keeps_the_sources_type_and_metadata(s3: Any, source: bytes) -> None:
    result = copy_of(s3, Key="copy/kept", ContentType="ignored/type", Metadata={"x": "ignored"})
    assert result["CopyObjectResult"]["ETag"] == quoted_md5(source)
    assert abs(result["CopyObjectResult"]["LastModified"] - datetime.now(UTC)) < timedelta(
        minutes=2
    )
    got = s3.get_object(Bucket=BUCKET, Key="copy/kept", ChecksumMode="ENABLED")
    assert got["Body"].read() == source
    assert got["ContentType"] == "image/x-source"
    assert got["ContentDisposition"] == "inline"
    assert got["Metadata"] == {"origin": "source", "mtime": "1"}
    # The source's algorithm, computed anew over the copy.
    assert got["ChecksumSHA256"] == checksum_b64("SHA256", source)


def test_replace_takes_the_requests_metadata_wholly(s3: Any, source: bytes) -> None:
    copy_of(
        s3,
        Key="copy/replaced",
        MetadataDirective="REPLACE",
        ContentType="text/x-new",
        Metadata={"mtime": "2"},
    )
    got = s3.get_object(Bucket=BUCKET, Key="copy/replaced")
    assert got["Body"].read() == source
    assert got["ContentType"] == "text/x-new"
    assert got["Metadata"] == {"mtime": "2"}, "replaced, not merged"
    assert "ContentDisposition" not in got


def test_a_self_copy_needs_replace(s3: Any) -> None:
    s3.put_object(Bucket=BUCKET, Key="copy/self", Body=b"me", Metadata={"mtime": "1"})
    with pytest.raises(ClientError) as refused:
        copy_of(s3, "copy/self", Key="copy/self")
    assert status_of(refused.value) == 400
    assert error_code_of(refused.value) == "InvalidRequest"
    copy_of(s3, "copy/self", Key="copy/self", MetadataDirective="REPLACE", Metadata={"mtime": "9"})
    got = s3.get_object(Bucket=BUCKET, Key="copy/self")
    assert got["Body"].read() == b"me"
    assert got["Metadata"] == {"mtime": "9"}


def test_a_self_copy_of_a_large_object_keeps_its_bytes(s3: Any) -> None:
    """The old version's chunks are still being read while the new one is written."""
    data = random_bytes(5 * MIB + 1)
    s3.put_object(Bucket=BUCKET, Key="copy/self-large", Body=data)
    copy_of(s3, "copy/self-large", Key="copy/self-large", MetadataDirective="REPLACE")
    assert s3.get_object(Bucket=BUCKET, Key="copy/self-large")["Body"].read() == data


@pytest.mark.parametrize("key", ["copy/한글 소스+%.bin", "copy/a b/../c~!'()*"])
def test_a_source_key_is_decoded_once(s3: Any, key: str) -> None:
    s3.put_object(Bucket=BUCKET, Key=key, Body=key.encode())
    copy_of(s3, key, Key="copy/from-unicode")
    assert s3.get_object(Bucket=BUCKET, Key="copy/from-unicode")["Body"].read() == key.encode()


@pytest.mark.parametrize("leading_slash", [True, False])
def test_a_copy_source_header_with_or_without_a_leading_slash(
    s3: Any, source: bytes, leading_slash: bool
) -> None:
    header = ("/" if leading_slash else "") + f"{BUCKET}/{quote('copy/source')}"
    s3.copy_object(Bucket=BUCKET, Key="copy/slash", CopySource=header)
    assert s3.get_object(Bucket=BUCKET, Key="copy/slash")["Body"].read() == source


def test_a_missing_source_is_no_such_key(s3: Any) -> None:
    with pytest.raises(ClientError) as refused:
        copy_of(s3, "copy/not-there", Key="copy/never")
    assert error_code_of(refused.value) == "NoSuchKey"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key="copy/never")


def test_the_sources_conditions(s3: Any, source: bytes) -> None:
    etag = quoted_md5(source)
    modified = s3.head_object(Bucket=BUCKET, Key="copy/source")["LastModified"]
    future = datetime.now(UTC) + timedelta(days=1)
    cases: list[tuple[dict[str, Any], int]] = [
        ({"CopySourceIfMatch": etag}, 200),
        ({"CopySourceIfMatch": '"0123"'}, 412),
        ({"CopySourceIfNoneMatch": etag}, 412),
        ({"CopySourceIfNoneMatch": '"0123"'}, 200),
        ({"CopySourceIfModifiedSince": future}, 412),
        ({"CopySourceIfModifiedSince": LONG_AGO}, 200),
        ({"CopySourceIfUnmodifiedSince": LONG_AGO}, 412),
        ({"CopySourceIfUnmodifiedSince": modified}, 200),
        ({"CopySourceIfMatch": etag, "CopySourceIfUnmodifiedSince": LONG_AGO}, 200),
        ({"CopySourceIfNoneMatch": '"0123"', "CopySourceIfModifiedSince": future}, 200),
    ]
    for conditions, expected in cases:
        key = "copy/conditional"
        s3.delete_object(Bucket=BUCKET, Key=key)
        try:
            copy_of(s3, Key=key, **conditions)
            status = 200
        except ClientError as error:
            status = status_of(error)
            assert error_code_of(error) == "PreconditionFailed"
        assert status == expected, conditions
        stored = 200
        try:
            s3.head_object(Bucket=BUCKET, Key=key)
        except ClientError as error:
            stored = status_of(error)
        assert stored == (200 if expected == 200 else 404), conditions


def test_the_destinations_conditions(s3: Any, source: bytes) -> None:
    s3.delete_object(Bucket=BUCKET, Key="copy/guarded")
    copy_of(s3, Key="copy/guarded", IfNoneMatch="*")
    with pytest.raises(ClientError) as exists:
        copy_of(s3, Key="copy/guarded", IfNoneMatch="*")
    assert status_of(exists.value) == 412
    with pytest.raises(ClientError) as stale:
        copy_of(s3, Key="copy/guarded", IfMatch='"0123"')
    assert status_of(stale.value) == 412
    copy_of(s3, Key="copy/guarded", IfMatch=quoted_md5(source))


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC64NVME", "SHA1"])
def test_a_copy_computes_the_checksum_asked_for(s3: Any, source: bytes, algorithm: str) -> None:
    result = copy_of(s3, Key=f"copy/summed-{algorithm}", ChecksumAlgorithm=algorithm)
    expected = checksum_b64(algorithm, source)
    assert result["CopyObjectResult"][f"Checksum{algorithm}"] == expected
    head = s3.head_object(Bucket=BUCKET, Key=f"copy/summed-{algorithm}", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected
    assert "ChecksumSHA256" not in head


def test_a_large_object_is_copied_whole(s3: Any) -> None:
    data = random_bytes(12 * MIB + 7)
    s3.put_object(Bucket=BUCKET, Key="copy/large", Body=data)
    result = copy_of(s3, "copy/large", Key="copy/large-copy")
    assert result["CopyObjectResult"]["ETag"] == quoted_md5(data)
    got = s3.get_object(Bucket=BUCKET, Key="copy/large-copy")["Body"].read()
    assert hashlib.md5(got).hexdigest() == hashlib.md5(data).hexdigest()


def test_a_copy_needs_read_on_the_source_bucket(
    cluster: LocalCluster, s3: Any, source: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key that may write ``default`` but not read the source's bucket is refused, and a
    read grant there lets it copy."""
    admin = admin_client(cluster, monkeypatch)
    admin.accounts.create_bucket("copy-private")
    s3.put_object(Bucket="copy-private", Key="secret", Body=b"classified")
    writer = new_key(cluster, monkeypatch, "copy-writer")
    admin.accounts.allow(BUCKET, writer.access_key_id, read=True, write=True)
    as_writer = s3_client(cluster, writer)
    with pytest.raises(ClientError) as refused:
        as_writer.copy_object(
            Bucket=BUCKET, Key="copy/stolen", CopySource={"Bucket": "copy-private", "Key": "secret"}
        )
    assert status_of(refused.value) == 403
    assert error_code_of(refused.value) == "AccessDenied"
    with pytest.raises(ClientError):
        s3.head_object(Bucket=BUCKET, Key="copy/stolen")
    # Its own bucket it may copy within.
    as_writer.copy_object(
        Bucket=BUCKET, Key="copy/allowed", CopySource={"Bucket": BUCKET, "Key": "copy/source"}
    )
    assert s3.get_object(Bucket=BUCKET, Key="copy/allowed")["Body"].read() == source


def test_a_copy_needs_write_on_the_destination_bucket(
    cluster: LocalCluster, s3: Any, source: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = new_key(cluster, monkeypatch, "copy-reader")
    admin_client(cluster, monkeypatch).accounts.allow(BUCKET, reader.access_key_id, read=True)
    with pytest.raises(ClientError) as refused:
        s3_client(cluster, reader).copy_object(
            Bucket=BUCKET, Key="copy/by-reader", CopySource={"Bucket": BUCKET, "Key": "copy/source"}
        )
    assert error_code_of(refused.value) == "AccessDenied"
