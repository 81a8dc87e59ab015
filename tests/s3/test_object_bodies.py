"""PutObject bodies as clients send them, over http (signed sha256, checksum header) and https
(unsigned aws-chunked body, checksum trailer): every flexible checksum right and wrong,
Content-MD5 right, wrong and malformed, raw aws-chunked bodies (signed with a trailer, unsigned
of unknown size), and the object limit counted on decoded bytes. Whatever fails stores
nothing: no object and no chunk file."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest
from botocore.exceptions import ClientError
from conftest import TEST_ROOT, ClusterOptions, error_code_of, random_bytes, status_of
from object_support import (
    ALGORITHMS,
    BUCKET,
    CHUNKED_BYTES,
    MIB,
    checksum_b64,
    md5_b64,
    quoted_md5,
    raw_s3_exchange,
    s3_port,
    stores_nothing,
    streaming_request,
)

from diststorage.local import LocalCluster
from diststorage.s3auth.signer import sign_request

MAX_OBJECT_BYTES = 8 * MIB


@pytest.fixture(scope="module", params=[False, True], ids=["http", "https"])
def cluster_options(request: pytest.FixtureRequest) -> ClusterOptions:
    return ClusterOptions(
        tls=request.param, gateway_args=("--max-object-bytes", str(MAX_OBJECT_BYTES))
    )


class SentHeaders:
    """The headers of the last PutObject botocore sent, to tell which path it took."""

    def __init__(self, s3: Any) -> None:
        self.last: dict[str, str] = {}
        s3.meta.events.register("before-send.s3.PutObject", self._record)

    def _record(self, request: Any, **_: Any) -> None:
        self.last = {
            name.lower(): value.decode() if isinstance(value, bytes) else str(value)
            for name, value in request.headers.items()
        }


@pytest.fixture(scope="module")
def sent(s3: Any) -> SentHeaders:
    return SentHeaders(s3)


def expect_path(cluster: LocalCluster, sent: SentHeaders, algorithm: str) -> None:
    """botocore trails the checksum over https and sends it as a header over http."""
    if cluster.tls is not None:
        assert sent.last["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
        assert sent.last["x-amz-trailer"] == f"x-amz-checksum-{algorithm.lower()}"
    else:
        assert f"x-amz-checksum-{algorithm.lower()}" in sent.last
        assert len(sent.last["x-amz-content-sha256"]) == 64


# -- flexible checksums ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1000, CHUNKED_BYTES], ids=["empty", "inline", "chunks"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_every_checksum_is_verified_stored_and_returned(
    cluster: LocalCluster, s3: Any, sent: SentHeaders, algorithm: str, size: int
) -> None:
    data = random_bytes(size)
    key = f"bodies/{algorithm}-{size}"
    put = s3.put_object(Bucket=BUCKET, Key=key, Body=data, ChecksumAlgorithm=algorithm)
    expect_path(cluster, sent, algorithm)
    expected = checksum_b64(algorithm, data)
    assert put["ETag"] == quoted_md5(data)
    assert put[f"Checksum{algorithm}"] == expected
    head = s3.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-checksum-type"] == "FULL_OBJECT"
    got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    s3.delete_object(Bucket=BUCKET, Key=key)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_wrong_checksum_header_is_bad_digest_and_stores_nothing(
    cluster: LocalCluster, s3: Any, algorithm: str
) -> None:
    data = random_bytes(CHUNKED_BYTES)
    key = f"bodies/wrong-{algorithm}"
    with stores_nothing(cluster, s3, key), pytest.raises(ClientError) as refused:
        s3.put_object(
            Bucket=BUCKET,
            Key=key,
            Body=data,
            **{f"Checksum{algorithm}": checksum_b64(algorithm, data + b"!")},
        )
    assert status_of(refused.value) == 400
    assert error_code_of(refused.value) == "BadDigest"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("right", [True, False], ids=["right", "wrong"])
def test_an_unsigned_trailer_of_every_algorithm(
    cluster: LocalCluster, s3: Any, algorithm: str, right: bool
) -> None:
    """Raw, as other SDKs send it: over http too, and without a decoded length."""
    data = random_bytes(CHUNKED_BYTES)
    key = f"bodies/trailer-{algorithm}-{right}"
    value = checksum_b64(algorithm, data if right else data[1:])
    request = unsigned_trailer_request(cluster, key, data, algorithm, value)
    if right:
        status, headers, _ = raw_s3_exchange(cluster, request)
        assert status == 200
        assert headers[f"x-amz-checksum-{algorithm.lower()}"] == value
        assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
        return
    with stores_nothing(cluster, s3, key):
        status, _, body = raw_s3_exchange(cluster, request)
    assert status == 400
    assert b"<Code>BadDigest</Code>" in body


def unsigned_trailer_request(
    cluster: LocalCluster,
    key: str,
    data: bytes,
    algorithm: str,
    value: str,
    decoded_length: bool = False,
) -> bytes:
    piece = 1 << 16
    body = b"".join(
        b"%x\r\n%s\r\n" % (len(data[i : i + piece]), data[i : i + piece])
        for i in range(0, len(data), piece)
    )
    name = f"x-amz-checksum-{algorithm.lower()}"
    body += f"0\r\n{name}:{value}\r\n\r\n".encode()
    path = f"/{BUCKET}/{quote(key)}"
    headers = {
        "host": f"127.0.0.1:{s3_port(cluster)}",
        "content-encoding": "aws-chunked",
        "x-amz-trailer": name,
    }
    if decoded_length:
        headers["x-amz-decoded-content-length"] = str(len(data))
    scheme = "https" if cluster.tls is not None else "http"
    headers.update(
        sign_request(
            "PUT",
            f"{scheme}://127.0.0.1:{s3_port(cluster)}{path}",
            headers,
            "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
            TEST_ROOT.access_key_id,
            TEST_ROOT.secret_access_key,
        )
    )
    headers["content-length"] = str(len(body))
    head = "\r\n".join([f"PUT {path} HTTP/1.1", *(f"{n}: {v}" for n, v in headers.items())])
    return (head + "\r\n\r\n").encode() + body


# -- Content-MD5 -----------------------------------------------------------------------------


def test_a_right_content_md5_is_accepted(s3: Any) -> None:
    data = random_bytes(CHUNKED_BYTES)
    put = s3.put_object(Bucket=BUCKET, Key="bodies/md5", Body=data, ContentMD5=md5_b64(data))
    assert put["ETag"] == quoted_md5(data)


def test_a_wrong_content_md5_is_bad_digest_and_stores_nothing(
    cluster: LocalCluster, s3: Any
) -> None:
    data = random_bytes(CHUNKED_BYTES)
    with stores_nothing(cluster, s3, "bodies/md5-wrong"), pytest.raises(ClientError) as refused:
        s3.put_object(
            Bucket=BUCKET, Key="bodies/md5-wrong", Body=data, ContentMD5=md5_b64(b"other")
        )
    assert status_of(refused.value) == 400
    assert error_code_of(refused.value) == "BadDigest"


@pytest.mark.parametrize("value", ["not base64!", "c2hvcnQ="], ids=["not-base64", "too-short"])
def test_a_malformed_content_md5_is_invalid_digest(
    cluster: LocalCluster, s3: Any, value: str
) -> None:
    with stores_nothing(cluster, s3, "bodies/md5-bad"), pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key="bodies/md5-bad", Body=b"data", ContentMD5=value)
    assert status_of(refused.value) == 400
    assert error_code_of(refused.value) == "InvalidDigest"


# -- raw signed aws-chunked ------------------------------------------------------------------


def test_a_signed_chunked_body_with_a_trailer_is_stored(cluster: LocalCluster, s3: Any) -> None:
    pieces = [random_bytes(MIB), random_bytes(MIB), random_bytes(MIB + 5)]
    data = b"".join(pieces)
    trailer = ("x-amz-checksum-crc32c", checksum_b64("CRC32C", data))
    request = streaming_request(cluster, f"/{BUCKET}/bodies/signed-trailer", pieces, trailer)
    status, headers, body = raw_s3_exchange(cluster, request)
    assert status == 200, body
    assert headers["etag"] == quoted_md5(data)
    got = s3.get_object(Bucket=BUCKET, Key="bodies/signed-trailer", ChecksumMode="ENABLED")
    assert got["ChecksumCRC32C"] == trailer[1]
    assert got["ContentLength"] == len(data)
    assert "ContentEncoding" not in got, "aws-chunked is framing, not the object's encoding"
    assert got["Body"].read() == data


def test_a_signed_trailer_with_a_wrong_checksum_is_bad_digest(
    cluster: LocalCluster, s3: Any
) -> None:
    """Every signature holds; only the checksum the trailer carries is not the body's."""
    pieces = [random_bytes(MIB), random_bytes(MIB + 5)]
    trailer = ("x-amz-checksum-sha256", checksum_b64("SHA256", b"another body"))
    key = "bodies/signed-wrong-sum"
    request = streaming_request(cluster, f"/{BUCKET}/{key}", pieces, trailer)
    with stores_nothing(cluster, s3, key):
        status, _, body = raw_s3_exchange(cluster, request)
    assert status == 400, body
    assert b"<Code>BadDigest</Code>" in body


def test_empty_chunked_bodies_signed_and_unsigned(cluster: LocalCluster, s3: Any) -> None:
    empty = checksum_b64("CRC32", b"")
    signed = streaming_request(
        cluster, f"/{BUCKET}/bodies/empty-signed", [], ("x-amz-checksum-crc32", empty)
    )
    unsigned = unsigned_trailer_request(cluster, "bodies/empty-unsigned", b"", "CRC32", empty)
    for key, request in (("bodies/empty-signed", signed), ("bodies/empty-unsigned", unsigned)):
        status, headers, body = raw_s3_exchange(cluster, request)
        assert status == 200, body
        assert headers["x-amz-checksum-crc32"] == empty
        got = s3.get_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        assert got["ContentLength"] == 0
        assert got["ChecksumCRC32"] == empty
        assert got["Body"].read() == b""


def test_a_corrupted_signed_chunked_body_stores_nothing(cluster: LocalCluster, s3: Any) -> None:
    pieces = [random_bytes(MIB), random_bytes(MIB), random_bytes(MIB + 5)]
    data = b"".join(pieces)
    trailer = ("x-amz-checksum-crc32c", checksum_b64("CRC32C", data))
    key = "bodies/signed-corrupt"
    request = streaming_request(cluster, f"/{BUCKET}/{key}", pieces, trailer, corrupt=True)
    with stores_nothing(cluster, s3, key):
        status, _, body = raw_s3_exchange(cluster, request)
    assert status in (400, 403), body
    assert b"<Code>SignatureDoesNotMatch</Code>" in body


# -- the object limit, on decoded bytes ------------------------------------------------------


def test_the_limit_counts_decoded_bytes(cluster: LocalCluster, s3: Any, sent: SentHeaders) -> None:
    """Over https the body on the wire is the limit plus its framing, and is accepted."""
    data = random_bytes(MAX_OBJECT_BYTES)
    s3.put_object(Bucket=BUCKET, Key="bodies/at-limit", Body=data, ChecksumAlgorithm="CRC32")
    expect_path(cluster, sent, "CRC32")
    head = s3.head_object(Bucket=BUCKET, Key="bodies/at-limit")
    assert head["ContentLength"] == MAX_OBJECT_BYTES
    s3.delete_object(Bucket=BUCKET, Key="bodies/at-limit")


def test_a_body_over_the_limit_is_refused_and_stores_nothing(
    cluster: LocalCluster, s3: Any
) -> None:
    with stores_nothing(cluster, s3, "bodies/over"), pytest.raises(ClientError) as refused:
        s3.put_object(Bucket=BUCKET, Key="bodies/over", Body=random_bytes(MAX_OBJECT_BYTES + 1))
    assert status_of(refused.value) == 400
    assert error_code_of(refused.value) == "EntityTooLarge"


def test_a_chunked_body_of_unknown_size_over_the_limit_stores_nothing(
    cluster: LocalCluster, s3: Any
) -> None:
    data = random_bytes(MAX_OBJECT_BYTES + 1)
    value = checksum_b64("CRC32", data)
    request = unsigned_trailer_request(cluster, "bodies/over-unknown", data, "CRC32", value)
    with stores_nothing(cluster, s3, "bodies/over-unknown"):
        status, _, body = raw_s3_exchange(cluster, request)
    assert status == 400
    assert b"<Code>EntityTooLarge</Code>" in body


def test_a_declared_decoded_length_over_the_limit_is_refused(
    cluster: LocalCluster, s3: Any
) -> None:
    data = random_bytes(MAX_OBJECT_BYTES + 1)
    value = checksum_b64("CRC32", data)
    request = unsigned_trailer_request(
        cluster, "bodies/over-declared", data, "CRC32", value, decoded_length=True
    )
    with stores_nothing(cluster, s3, "bodies/over-declared"):
        status, _, body = raw_s3_exchange(cluster, request)
    assert status == 400
    assert b"<Code>EntityTooLarge</Code>" in body
