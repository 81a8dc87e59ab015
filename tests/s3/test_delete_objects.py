"""DeleteObjects through boto3 against a real cluster (S3.md pitfalls 14 and 15): boto3's own
request (a CRC32 checksum header and no Content-MD5), Content-MD5 alone, neither (refused),
a wrong checksum, Quiet mode, missing keys reported deleted, per-key errors, the 1000-key cap,
keys that XML and URLs get wrong, an entity bomb and an oversized body; and boto3 over https.

Requests that boto3 would not send are boto3's own, changed just before signing (so the
signature covers what is sent): a body replaced, checksum headers dropped or swapped.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import (
    ClusterOptions,
    ClusterPool,
    error_code_of,
    gateway_client,
    s3_client,
    status_of,
)

from diststorage.client import Client, Credentials
from diststorage.local import LocalCluster

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster

BUCKET = "default"
CHECKSUM_HEADERS = ("Content-MD5", "x-amz-checksum-crc32", "x-amz-sdk-checksum-algorithm")


@pytest.fixture(scope="module")
def http(cluster: LocalCluster) -> Client:
    return gateway_client(cluster.url)


def seed(http: Client, *keys: str) -> None:
    for key in keys:
        assert http.put(key, b"to delete").status == 201, key


def exists(http: Client, key: str) -> bool:
    return http.head(key).status == 200


def objects(*keys: str) -> dict[str, Any]:
    return {"Objects": [{"Key": key} for key in keys]}


def crc32_header(body: bytes) -> str:
    return base64.b64encode(zlib.crc32(body).to_bytes(4, "big")).decode()


def changing_request(
    client: Any, body: bytes | None = None, headers: Mapping[str, str | None] | None = None
) -> list[dict[str, str]]:
    """Makes the client's DeleteObjects send ``body`` (with its CRC32 header) and ``headers``
    (None drops one); returns the headers of each request as sent."""

    def change(request: Any, **_: Any) -> None:
        if body is not None:
            request.data = body
            changed = {"Content-MD5": None, "x-amz-checksum-crc32": crc32_header(body)}
            _set(request, {"Content-Length": None, **changed})
        _set(request, headers or {})

    sent: list[dict[str, str]] = []
    client.meta.events.register("before-sign.s3.DeleteObjects", change)
    client.meta.events.register(
        "before-send.s3.DeleteObjects", lambda request, **_: sent.append(dict(request.headers))
    )
    return sent


def _set(request: Any, headers: Mapping[str, str | None]) -> None:
    for name, value in headers.items():
        if name in request.headers:
            del request.headers[name]
        if value is not None:
            request.headers[name] = value


def refused(call: Callable[[], Any]) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    message = str(caught.value.response["Error"].get("Message", ""))
    return status_of(caught.value), error_code_of(caught.value), message


def deleted_keys(answer: dict[str, Any]) -> list[str]:
    return [entry["Key"] for entry in answer.get("Deleted", [])]


# -- what is deleted and how it is reported --------------------------------------------------


def test_each_key_is_reported_deleted_missing_ones_too(cluster: LocalCluster, http: Client) -> None:
    seed(http, "del/one", "del/two")
    client = s3_client(cluster)
    sent = changing_request(client)
    answer = client.delete_objects(
        Bucket=BUCKET, Delete=objects("del/one", "del/missing", "del/two")
    )
    assert deleted_keys(answer) == ["del/one", "del/missing", "del/two"]
    assert "Errors" not in answer
    assert not exists(http, "del/one") and not exists(http, "del/two")
    # What boto3 >= 1.36 sends: a CRC32 checksum header and no Content-MD5.
    headers = {name.lower() for name in sent[0]}
    assert "x-amz-checksum-crc32" in headers and "content-md5" not in headers


def test_quiet_mode_reports_only_errors(s3: Any, http: Client) -> None:
    seed(http, "quiet/a", "quiet/b")
    answer = s3.delete_objects(
        Bucket=BUCKET, Delete={**objects("quiet/a", "quiet/b", "quiet/gone"), "Quiet": True}
    )
    assert "Deleted" not in answer and "Errors" not in answer
    assert not exists(http, "quiet/a") and not exists(http, "quiet/b")
    key = "quiet/" + "k" * 1100
    errors = s3.delete_objects(Bucket=BUCKET, Delete={**objects(key), "Quiet": True})["Errors"]
    assert [(e["Key"], e["Code"]) for e in errors] == [(key, "KeyTooLongError")]


def test_per_key_errors_do_not_stop_the_others(s3: Any, http: Client) -> None:
    seed(http, "perkey/kept", "perkey/gone", "perkey/null")
    too_long = "perkey/" + "x" * 1100
    answer = s3.delete_objects(
        Bucket=BUCKET,
        Delete={
            "Objects": [
                {"Key": "perkey/kept", "VersionId": "3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY"},
                {"Key": too_long},
                {"Key": "perkey/gone"},
                {"Key": "perkey/null", "VersionId": "null"},
            ]
        },
    )
    assert [(e["Key"], e["Code"]) for e in answer["Errors"]] == [
        ("perkey/kept", "NoSuchVersion"),
        (too_long, "KeyTooLongError"),
    ]
    assert all(e["Message"] for e in answer["Errors"])
    assert answer["Deleted"] == [
        {"Key": "perkey/gone"},
        {"Key": "perkey/null", "VersionId": "null"},
    ]
    assert exists(http, "perkey/kept")
    assert not exists(http, "perkey/gone") and not exists(http, "perkey/null")


ODD = ["a b", "a+b", "100%", "한글/x", "dir/", "//x", "a/../b", "tab\there", "quote\"'<&>"]


def test_odd_keys_round_trip(s3: Any, http: Client) -> None:
    keys = [f"oddkeys/{k}" for k in ODD]
    seed(http, *keys)
    answer = s3.delete_objects(Bucket=BUCKET, Delete=objects(*keys))
    assert deleted_keys(answer) == keys
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="oddkeys/").get("Contents") is None


def test_a_carriage_return_in_a_key_survives_both_ways(cluster: LocalCluster, http: Client) -> None:
    """A parser turns a raw \\r into \\n, so the key must travel as &#13; (pitfall 12)."""
    key = "crkey/a\rb"
    seed(http, key)
    body = (
        b'<?xml version="1.0" encoding="UTF-8"?><Delete><Object><Key>crkey/a&#13;b</Key>'
        b"</Object></Delete>"
    )
    client = s3_client(cluster)
    changing_request(client, body=body)
    received: list[bytes] = []
    client.meta.events.register(
        "after-call.s3.DeleteObjects",
        lambda http_response, **_: received.append(http_response.content),
    )
    answer = client.delete_objects(Bucket=BUCKET, Delete=objects("placeholder"))
    assert deleted_keys(answer) == [key]
    assert b"<Key>crkey/a&#13;b</Key>" in received[0]
    assert not exists(http, key)


def test_up_to_a_thousand_keys(s3: Any, http: Client) -> None:
    present = [f"many/{i:04d}" for i in range(0, 1000, 100)]
    seed(http, *present)
    keys = [f"many/{i:04d}" for i in range(1000)]
    answer = s3.delete_objects(Bucket=BUCKET, Delete=objects(*keys))
    assert deleted_keys(answer) == keys
    assert not any(exists(http, key) for key in present)


def test_more_than_a_thousand_keys_is_malformed_and_deletes_nothing(s3: Any, http: Client) -> None:
    seed(http, "toomany/0000")
    keys = [f"toomany/{i:04d}" for i in range(1001)]
    assert refused(lambda: s3.delete_objects(Bucket=BUCKET, Delete=objects(*keys)))[:2] == (
        400,
        "MalformedXML",
    )
    assert exists(http, "toomany/0000")


# -- integrity headers -----------------------------------------------------------------------


def test_content_md5_alone_is_enough(cluster: LocalCluster, http: Client) -> None:
    seed(http, "md5/only")
    body = b"<Delete><Object><Key>md5/only</Key></Object></Delete>"  # no namespace: fine too
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    client = s3_client(cluster)
    sent = changing_request(
        client, body=body, headers={**dict.fromkeys(CHECKSUM_HEADERS), "Content-MD5": md5}
    )
    answer = client.delete_objects(Bucket=BUCKET, Delete=objects("placeholder"))
    assert deleted_keys(answer) == ["md5/only"]
    assert {n.lower() for n in sent[0]} >= {"content-md5"}
    assert "x-amz-checksum-crc32" not in {n.lower() for n in sent[0]}


def test_neither_md5_nor_a_checksum_is_refused(cluster: LocalCluster, http: Client) -> None:
    seed(http, "nomd5/kept")
    client = s3_client(cluster)
    changing_request(client, headers=dict.fromkeys(CHECKSUM_HEADERS))
    status, code, message = refused(
        lambda: client.delete_objects(Bucket=BUCKET, Delete=objects("nomd5/kept"))
    )
    assert (status, code) == (400, "InvalidRequest")
    assert "Content-MD5" in message
    assert exists(http, "nomd5/kept")


@pytest.mark.parametrize("header", ["x-amz-checksum-crc32", "Content-MD5"])
def test_a_wrong_digest_deletes_nothing(cluster: LocalCluster, http: Client, header: str) -> None:
    seed(http, "baddigest/kept")
    wrong = {
        "x-amz-checksum-crc32": crc32_header(b"something else"),
        "Content-MD5": base64.b64encode(hashlib.md5(b"something else").digest()).decode(),
    }
    client = s3_client(cluster)
    changing_request(client, headers={**dict.fromkeys(CHECKSUM_HEADERS), header: wrong[header]})
    assert refused(lambda: client.delete_objects(Bucket=BUCKET, Delete=objects("baddigest/kept")))[
        :2
    ] == (400, "BadDigest")
    assert exists(http, "baddigest/kept")


# -- bodies that are not a Delete ------------------------------------------------------------

XML_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lolololololololololol">'
    + b"".join(
        f'<!ENTITY lol{n} "{("&lol" + (str(n - 1) if n > 1 else "") + ";") * 10}">'.encode()
        for n in range(1, 10)
    )
    + b"]><Delete><Object><Key>&lol9;</Key></Object></Delete>"
)


@pytest.mark.parametrize(
    "body",
    [
        XML_BOMB,
        b"<Delete><Object><Key>unclosed</Key></Object>",
        b"<Delete><Quiet>maybe</Quiet><Object><Key>k</Key></Object></Delete>",
        b"<Delete></Delete>",
        b"<Delete><Object><VersionId>null</VersionId></Object></Delete>",
        b"<CompleteMultipartUpload><Part/></CompleteMultipartUpload>",
    ],
    ids=["entity-bomb", "unclosed", "bad-quiet", "no-object", "no-key", "other-document"],
)
def test_a_body_that_is_no_delete_is_malformed_xml(cluster: LocalCluster, body: bytes) -> None:
    client = s3_client(cluster)
    changing_request(client, body=body)
    assert refused(lambda: client.delete_objects(Bucket=BUCKET, Delete=objects("x")))[:2] == (
        400,
        "MalformedXML",
    )


def test_an_oversized_body_is_refused(cluster: LocalCluster, http: Client) -> None:
    seed(http, "oversized/kept")
    padding = b" " * (2 * 1024 * 1024)
    body = b"<Delete><Object><Key>oversized/kept</Key></Object>" + padding + b"</Delete>"
    client = s3_client(cluster)
    changing_request(client, body=body)
    status, code, _ = refused(
        lambda: client.delete_objects(Bucket=BUCKET, Delete=objects("oversized/kept"))
    )
    assert (status, code) == (400, "EntityTooLarge")
    assert exists(http, "oversized/kept")


# -- rights ----------------------------------------------------------------------------------


def test_deleting_needs_a_write_grant(cluster: LocalCluster, http: Client) -> None:
    seed(http, "rights/kept")
    made = http.accounts.create_key("delete-reader", can_create_buckets=False)
    reader = Credentials(made["access_key_id"], made["secret_access_key"])
    http.accounts.allow(BUCKET, reader.access_key_id, read=True)
    s3 = s3_client(cluster, reader)
    assert refused(lambda: s3.delete_objects(Bucket=BUCKET, Delete=objects("rights/kept")))[:2] == (
        403,
        "AccessDenied",
    )
    assert exists(http, "rights/kept")
    http.accounts.allow(BUCKET, reader.access_key_id, write=True)
    assert deleted_keys(s3.delete_objects(Bucket=BUCKET, Delete=objects("rights/kept"))) == [
        "rights/kept"
    ]
    assert not exists(http, "rights/kept")


# -- over https ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_cluster(cluster_pool: ClusterPool) -> LocalCluster:
    """The standard cluster over TLS, as the https runs of the other S3 modules use it."""
    return cluster_pool.get(ClusterOptions(tls=True))


def test_over_https_too(tls_cluster: LocalCluster) -> None:
    """The production path: boto3 over TLS, in a bucket of its own filled by PutObject."""
    s3 = s3_client(tls_cluster)
    s3.create_bucket(Bucket="over-tls")
    for key in ("tls/a", "tls/b"):
        s3.put_object(Bucket="over-tls", Key=key, Body=b"x")
    sent = changing_request(s3)
    answer = s3.delete_objects(Bucket="over-tls", Delete=objects("tls/a", "tls/gone", "tls/b"))
    assert deleted_keys(answer) == ["tls/a", "tls/gone", "tls/b"]
    assert "x-amz-checksum-crc32" in {name.lower() for name in sent[0]}
    assert "Contents" not in s3.list_objects_v2(Bucket="over-tls")
    s3.put_object(Bucket="over-tls", Key="tls/kept", Body=b"x")
    bare = s3_client(tls_cluster)
    changing_request(bare, headers=dict.fromkeys(CHECKSUM_HEADERS))
    assert refused(lambda: bare.delete_objects(Bucket="over-tls", Delete=objects("tls/kept")))[
        :2
    ] == (400, "InvalidRequest")
    wrong = s3_client(tls_cluster)
    changing_request(wrong, headers={"x-amz-checksum-crc32": crc32_header(b"other")})
    assert refused(lambda: wrong.delete_objects(Bucket="over-tls", Delete=objects("tls/kept")))[
        :2
    ] == (400, "BadDigest")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="over-tls")["Contents"]] == ["tls/kept"]
