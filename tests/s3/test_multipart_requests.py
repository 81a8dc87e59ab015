"""Multipart requests no SDK sends as such, built and signed by hand, over http and https:
parts whose bodies are signed chunk by chunk (with and without a signed trailer) and tampered
ones, Complete bodies with and without the S3 namespace, empty, malformed, with a DTD or too
big; and UploadPartCopy needing READ on its source bucket."""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from conftest import (
    ClusterOptions,
    chunk_files,
    error_code_of,
    gateway_client,
    random_bytes,
    s3_client,
    status_of,
    temp_files,
    wait_until,
)
from s3_multipart_support import (
    BUCKET,
    MIB,
    MIN_PART,
    S3_NS,
    complete_body,
    crc32_b64,
    md5_hex,
    multipart_etag,
    object_bytes,
    part_in_flight,
    s3_request,
    signed_streaming_part,
    unique_key,
    upload_parts,
)

from diststorage.client import Credentials
from diststorage.core.ids import new_id
from diststorage.local import LocalCluster

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster


@pytest.fixture(scope="module", params=[False, True], ids=["http", "https"])
def cluster_options(request: pytest.FixtureRequest) -> ClusterOptions:
    return ClusterOptions(tls=request.param)


def parts_of(s3: Any, key: str, upload_id: str) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id).get(
        "Parts", []
    )
    return parts


# -- signed aws-chunked parts ----------------------------------------------------------------


@pytest.mark.parametrize("sizes", [[64 * 1024, 64 * 1024, 1000], []], ids=["3-chunks", "empty"])
@pytest.mark.parametrize("with_trailer", [False, True], ids=["signed", "signed-trailer"])
def test_a_part_signed_chunk_by_chunk_is_stored_decoded(
    s3: Any, cluster: LocalCluster, with_trailer: bool, sizes: list[int]
) -> None:
    key = unique_key("chunked")
    pieces = [random_bytes(size) for size in sizes]
    data = b"".join(pieces)
    upload_id = upload_parts(s3, key, {})
    trailer = ("x-amz-checksum-crc32", crc32_b64(data)) if with_trailer else None
    answer = signed_streaming_part(cluster, key, upload_id, 1, pieces, trailer)
    assert answer.status == 200, answer.body
    assert answer.headers["ETag"] == f'"{md5_hex(data)}"'
    if with_trailer:
        assert answer.headers["x-amz-checksum-crc32"] == crc32_b64(data)
    assert [p["Size"] for p in parts_of(s3, key, upload_id)] == [len(data)]
    s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": answer.headers["ETag"]}]},
    )
    assert object_bytes(s3, key) == data


def test_a_tampered_chunk_stores_no_part(s3: Any, cluster: LocalCluster) -> None:
    key = unique_key("tampered")
    upload_id = upload_parts(s3, key, {})
    pieces = [random_bytes(10_000), random_bytes(500)]
    answer = signed_streaming_part(cluster, key, upload_id, 1, pieces, tamper=True)
    assert (answer.status, answer.code()) == (403, "SignatureDoesNotMatch")
    assert parts_of(s3, key, upload_id) == []


def test_a_wrong_signed_trailer_checksum_is_bad_digest(s3: Any, cluster: LocalCluster) -> None:
    key = unique_key("trailer")
    upload_id = upload_parts(s3, key, {})
    trailer = ("x-amz-checksum-crc32", crc32_b64(b"something else"))
    answer = signed_streaming_part(cluster, key, upload_id, 1, [random_bytes(4000)], trailer)
    assert (answer.status, answer.code()) == (400, "BadDigest")
    assert parts_of(s3, key, upload_id) == []


def test_an_abort_during_a_part_leaves_no_chunk(s3: Any, cluster: LocalCluster) -> None:
    """The part's stripes already on nodes are rolled back when its commit finds the upload
    aborted, and the part answers NoSuchUpload."""
    key = unique_key("inflight")
    upload_id = upload_parts(s3, key, {})

    def on_nodes() -> set[Path]:
        """Chunk files, committed or still being written."""
        return chunk_files(cluster) | temp_files(cluster)

    before = on_nodes()
    data = random_bytes(6 * MIB)
    with part_in_flight(cluster, key, upload_id, len(data)) as connection:
        connection.send(data[: 5 * MIB])
        assert wait_until(lambda: bool(on_nodes() - before), 30.0)
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)
        connection.send(data[5 * MIB :])
        response = connection.getresponse()
        assert response.status == 404
        assert b"<Code>NoSuchUpload</Code>" in response.read()
    assert wait_until(lambda: not on_nodes() - before, 30.0)


# -- Complete bodies -------------------------------------------------------------------------


@pytest.mark.parametrize("namespace", [True, False], ids=["xmlns", "no-xmlns"])
def test_a_complete_body_with_or_without_the_namespace(
    s3: Any, cluster: LocalCluster, namespace: bool
) -> None:
    key = unique_key("xmlns")
    parts = {1: random_bytes(MIN_PART), 2: b"end"}
    upload_id = upload_parts(s3, key, parts)
    listed = [(1, md5_hex(parts[1])), (2, f'"{md5_hex(parts[2])}"')]
    body = complete_body(listed, namespace)
    answer = s3_request(cluster, "POST", key, f"uploadId={upload_id}", body)
    assert answer.status == 200, answer.body
    result = answer.xml()
    assert result.tag == S3_NS + "CompleteMultipartUploadResult"
    assert result.findtext(S3_NS + "ETag") == f'"{multipart_etag(parts.values())}"'
    assert result.findtext(S3_NS + "Key") == key
    assert object_bytes(s3, key) == b"".join(parts.values())


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&lol2;</ETag></Part>
</CompleteMultipartUpload>"""


@pytest.mark.parametrize(
    "body",
    [
        BOMB,
        b"<CompleteMultipartUpload><Part><PartNumber>1",
        b"<CompleteMultipartUpload></CompleteMultipartUpload>",
        b"<Delete><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></Delete>",
        b"<CompleteMultipartUpload><Part><ETag>x</ETag></Part></CompleteMultipartUpload>",
        b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part>"
        b"</CompleteMultipartUpload>",
    ],
    ids=["dtd", "cut", "no-parts", "other-root", "no-number", "bad-number"],
)
def test_a_complete_body_that_is_not_a_part_list_is_malformed(
    s3: Any, cluster: LocalCluster, body: bytes
) -> None:
    key = unique_key("malformed")
    upload_id = upload_parts(s3, key, {1: b"data"})
    answer = s3_request(cluster, "POST", key, f"uploadId={upload_id}", body)
    assert (answer.status, answer.code()) == (400, "MalformedXML")
    # Nothing was completed: the upload is still open.
    assert len(parts_of(s3, key, upload_id)) == 1


def test_a_complete_body_over_4_mib_is_refused(s3: Any, cluster: LocalCluster) -> None:
    key = unique_key("huge")
    upload_id = upload_parts(s3, key, {1: b"data"})
    part = f"<Part><PartNumber>1</PartNumber><ETag>{md5_hex(b'data')}</ETag></Part>"
    body = ("<CompleteMultipartUpload>" + part * (4 * 1024 * 1024 // len(part) + 1)).encode()
    body += b"</CompleteMultipartUpload>"
    answer = s3_request(cluster, "POST", key, f"uploadId={upload_id}", body)
    assert (answer.status, answer.code()) == (400, "EntityTooLarge")
    assert len(parts_of(s3, key, upload_id)) == 1


def test_a_complete_checksum_header_is_the_objects_not_the_bodys(
    s3: Any, cluster: LocalCluster
) -> None:
    key = unique_key("objectsum")
    data = random_bytes(3000)
    upload_id = s3.create_multipart_upload(
        Bucket=BUCKET, Key=key, ChecksumAlgorithm="CRC32", ChecksumType="FULL_OBJECT"
    )["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=data)
    body = complete_body([(1, md5_hex(data))])
    wrong = s3_request(
        cluster,
        "POST",
        key,
        f"uploadId={upload_id}",
        body,
        {"x-amz-checksum-crc32": crc32_b64(body)},
    )
    assert (wrong.status, wrong.code()) == (400, "BadDigest")
    named = {"x-amz-checksum-crc32": crc32_b64(data), "x-amz-sdk-checksum-algorithm": "CRC32"}
    answer = s3_request(cluster, "POST", key, f"uploadId={upload_id}", body, named)
    assert answer.status == 200, answer.body
    assert answer.xml().findtext(S3_NS + "ChecksumCRC32") == crc32_b64(data)
    assert answer.xml().findtext(S3_NS + "ChecksumType") == "FULL_OBJECT"


# -- UploadPartCopy's source grant -----------------------------------------------------------


@pytest.fixture
def copier(
    cluster: LocalCluster, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[BaseClient, str, str]]:
    """A key that may write the default bucket, two buckets holding an object ``k`` each, the
    first readable by the key, the second not."""
    if cluster.tls is not None:
        monkeypatch.setenv("SSL_CERT_FILE", str(cluster.tls.ca))
    admin = gateway_client(cluster.url).accounts
    made = admin.create_key(f"copier-{new_id()[:8]}", can_create_buckets=False)
    readable, hidden = f"src-{new_id()[:10]}", f"src-{new_id()[:10]}"
    for bucket in (readable, hidden):
        admin.create_bucket(bucket)
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
        etag = s3.upload_part(Bucket=bucket, Key="k", UploadId=upload_id, PartNumber=1, Body=b"k")
        s3.complete_multipart_upload(
            Bucket=bucket,
            Key="k",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag["ETag"]}]},
        )
    admin.allow(BUCKET, made["access_key_id"], write=True)
    admin.allow(readable, made["access_key_id"], read=True)
    key = Credentials(made["access_key_id"], made["secret_access_key"])
    yield s3_client(cluster, key), readable, hidden


def test_upload_part_copy_needs_read_on_the_source_bucket(copier: tuple[Any, str, str]) -> None:
    client, readable, hidden = copier
    key = unique_key("granted")
    upload_id = client.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    arguments = {"Bucket": BUCKET, "Key": key, "UploadId": upload_id, "PartNumber": 1}
    with pytest.raises(ClientError) as refused:
        client.upload_part_copy(**arguments, CopySource=f"{hidden}/k")
    assert (error_code_of(refused.value), status_of(refused.value)) == ("AccessDenied", 403)
    copied = client.upload_part_copy(
        **arguments, CopySource=f"/{readable}/{urllib.parse.quote('k')}"
    )
    assert copied["CopyPartResult"]["ETag"] == f'"{md5_hex(b"k")}"'
