"""Who may do what on the S3 API (S3.md §2, pitfall 19), through boto3 against a real cluster.

Each operation class (read, write, owner) against a key with no grant, a read grant, a write
grant and an owner grant; ListBuckets shows only granted buckets; the create-bucket flag; a
copy needs read on its source and write on its destination; a disabled key is refused within
the key cache's TTL by a second gateway on the same PostgreSQL database; and requests that are
unsigned, wrongly signed, signed for another region or 20 minutes off are refused with S3's
codes. Keys and grants are made through the admin routes with the root key.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from botocore.exceptions import ClientError
from conftest import (
    PG_ADMIN,
    TEST_ROOT,
    UNSIGNED_PAYLOAD,
    ClusterOptions,
    cluster_in,
    error_code_of,
    gateway_client,
    s3_client,
    status_of,
)

from diststorage.client import Client, Credentials
from diststorage.core.ids import new_id
from diststorage.local import LocalCluster
from diststorage.s3auth.signer import sign_request

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster

KEY_CACHE_TTL_S = 5.0  # the gateways' default
MATRIX_BUCKET = "authz-matrix"
GRANTS = ("none", "read", "write", "owner")
OK = "ok"
DENIED = "AccessDenied"


@pytest.fixture(scope="module")
def admin(cluster: LocalCluster) -> Client:
    """The native client with the root key, for the admin routes (keys, grants)."""
    return gateway_client(cluster.url)


def new_key(admin: Client, name: str, can_create_buckets: bool = True) -> Credentials:
    made = admin.accounts.create_key(
        f"{name}-{new_id()[:6]}", can_create_buckets=can_create_buckets
    )
    return Credentials(made["access_key_id"], made["secret_access_key"])


def granted_key(admin: Client, bucket: str, grant: str, name: str) -> Credentials:
    """A new key holding ``grant`` (none, read, write or owner) on ``bucket``."""
    key = new_key(admin, name)
    if grant != "none":
        admin.accounts.allow(bucket, key.access_key_id, **{grant: True})
    return key


def outcome(call: Callable[[], object]) -> str:
    """ "ok", or the S3 error code (a HEAD's status, since it has no body)."""
    try:
        call()
    except ClientError as error:
        return error_code_of(error)
    return OK


def denied(code: str, head: bool = False) -> str:
    return "403" if head else code


# -- the matrix --------------------------------------------------------------------------------

CLASSES = {
    "read": ("GetObject", "HeadObject", "ListObjects", "ListObjectsV2", "HeadBucket"),
    "write": ("PutObject", "DeleteObject", "CreateMultipartUpload"),
    "owner": ("DeleteBucket",),
}
HEADS = {"HeadObject", "HeadBucket"}
# Garage's model: owner alone is neither read nor write; read and write are independent.
ALLOWED = {
    "none": set(),
    "read": {"read"},
    "write": {"write"},
    "owner": {"owner"},
}


@pytest.fixture(scope="module")
def matrix_bucket(s3: Any) -> str:
    s3.create_bucket(Bucket=MATRIX_BUCKET)
    s3.put_object(Bucket=MATRIX_BUCKET, Key="existing", Body=b"there")
    return MATRIX_BUCKET


def body_of(answer: Mapping[str, Any]) -> bytes:
    data: bytes = answer["Body"].read()
    return data


def operations(client: Any, grant: str) -> dict[str, Callable[[], object]]:
    bucket = MATRIX_BUCKET
    empty = f"authz-empty-{grant}"
    return {
        "GetObject": lambda: body_of(client.get_object(Bucket=bucket, Key="existing")),
        "HeadObject": lambda: client.head_object(Bucket=bucket, Key="existing"),
        "ListObjects": lambda: client.list_objects(Bucket=bucket),
        "ListObjectsV2": lambda: client.list_objects_v2(Bucket=bucket),
        "HeadBucket": lambda: client.head_bucket(Bucket=bucket),
        "PutObject": lambda: client.put_object(Bucket=bucket, Key=f"new-{grant}", Body=b"n"),
        "DeleteObject": lambda: client.delete_object(Bucket=bucket, Key=f"victim-{grant}"),
        "CreateMultipartUpload": lambda: client.create_multipart_upload(
            Bucket=bucket, Key=f"upload-{grant}"
        ),
        "DeleteBucket": lambda: client.delete_bucket(Bucket=empty),
    }


def expected_outcomes(grant: str) -> dict[str, str]:
    expected = {}
    for right, names in CLASSES.items():
        for name in names:
            allowed = right in ALLOWED[grant]
            expected[name] = OK if allowed else denied(DENIED, head=name in HEADS)
    return expected


def keys_of(s3: Any, bucket: str) -> set[str]:
    listed = s3.list_objects_v2(Bucket=bucket)
    return {o["Key"] for o in listed.get("Contents", [])}


@pytest.mark.parametrize("grant", GRANTS)
def test_each_operation_class_needs_its_grant(
    cluster: LocalCluster, s3: Any, admin: Client, matrix_bucket: str, grant: str
) -> None:
    empty = f"authz-empty-{grant}"
    s3.create_bucket(Bucket=empty)
    key = granted_key(admin, matrix_bucket, grant, grant)
    if grant != "none":
        admin.accounts.allow(empty, key.access_key_id, **{grant: True})
    s3.put_object(Bucket=matrix_bucket, Key=f"victim-{grant}", Body=b"v")
    client = s3_client(cluster, key)
    got = {name: outcome(call) for name, call in operations(client, grant).items()}
    assert got == expected_outcomes(grant)
    stored = keys_of(s3, matrix_bucket)
    writes = "write" in ALLOWED[grant]
    assert (f"new-{grant}" in stored) is writes, "a refused PutObject stored nothing"
    assert (f"victim-{grant}" in stored) is not writes, "a refused DeleteObject kept the key"
    uploads = s3.list_multipart_uploads(Bucket=matrix_bucket).get("Uploads", [])
    mine = [u for u in uploads if u["Key"] == f"upload-{grant}"]
    assert len(mine) == (1 if writes else 0)
    for upload in mine:
        s3.abort_multipart_upload(
            Bucket=matrix_bucket, Key=upload["Key"], UploadId=upload["UploadId"]
        )
    buckets = {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert (empty in buckets) is not ("owner" in ALLOWED[grant])


def test_a_refused_request_reads_as_access_denied_with_a_request_id(
    cluster: LocalCluster, admin: Client, matrix_bucket: str
) -> None:
    client = s3_client(cluster, granted_key(admin, matrix_bucket, "read", "reader"))
    with pytest.raises(ClientError) as refused:
        client.put_object(Bucket=matrix_bucket, Key="refused", Body=b"x")
    assert status_of(refused.value) == 403
    assert error_code_of(refused.value) == "AccessDenied"
    assert refused.value.response["ResponseMetadata"]["RequestId"]


def test_a_refused_upload_leaves_its_connection_answering_right(
    cluster: LocalCluster, admin: Client, matrix_bucket: str
) -> None:
    """botocore sends PutObject with Expect: 100-continue and, refused, never sends the body:
    the next request on that pooled connection must get its own answer, not a 400 from a
    server that took its first byte for the one-byte body it was still waiting for."""
    client = s3_client(cluster, granted_key(admin, matrix_bucket, "read", "reader-again"))
    for _ in range(3):
        refused = outcome(lambda: client.put_object(Bucket=matrix_bucket, Key="refused", Body=b"x"))
        assert refused == DENIED
        read = outcome(lambda: body_of(client.get_object(Bucket=matrix_bucket, Key="existing")))
        assert read == OK


# -- ListBuckets, CreateBucket -----------------------------------------------------------------


def bucket_names(client: Any) -> list[str]:
    return [b["Name"] for b in client.list_buckets()["Buckets"]]


def test_list_buckets_shows_only_granted_buckets(
    cluster: LocalCluster, s3: Any, admin: Client
) -> None:
    for name in ("listed-one", "listed-two", "listed-hidden"):
        s3.create_bucket(Bucket=name)
    key = new_key(admin, "lister")
    client = s3_client(cluster, key)
    assert bucket_names(client) == []
    admin.accounts.allow("listed-one", key.access_key_id, read=True)
    admin.accounts.allow("listed-two", key.access_key_id, write=True)
    assert bucket_names(client) == ["listed-one", "listed-two"]
    assert {"listed-one", "listed-two", "listed-hidden"} <= set(bucket_names(s3))


def test_a_key_without_the_create_bucket_flag_cannot_create_buckets(
    cluster: LocalCluster, admin: Client
) -> None:
    client = s3_client(cluster, new_key(admin, "no-create", can_create_buckets=False))
    with pytest.raises(ClientError) as refused:
        client.create_bucket(Bucket="never-made")
    assert error_code_of(refused.value) == "AccessDenied"
    assert "never-made" not in bucket_names(s3_client(cluster))


def test_a_created_bucket_belongs_to_its_creator_alone(
    cluster: LocalCluster, admin: Client
) -> None:
    creator = s3_client(cluster, new_key(admin, "creator"))
    creator.create_bucket(Bucket="created-by-key")
    creator.put_object(Bucket="created-by-key", Key="mine", Body=b"mine")
    assert creator.get_object(Bucket="created-by-key", Key="mine")["Body"].read() == b"mine"
    assert bucket_names(creator) == ["created-by-key"]
    stranger = s3_client(cluster, new_key(admin, "stranger"))
    assert outcome(lambda: stranger.get_object(Bucket="created-by-key", Key="mine")) == DENIED
    creator.delete_object(Bucket="created-by-key", Key="mine")
    creator.delete_bucket(Bucket="created-by-key")
    assert "created-by-key" not in bucket_names(s3_client(cluster))


# -- CopyObject --------------------------------------------------------------------------------

COPY_CASES = {
    # (rights on the source bucket, rights on the destination bucket): outcome
    "read source, write destination": (("read",), ("write",), OK),
    "write destination only": ((), ("write",), DENIED),
    "read source only": (("read",), (), DENIED),
    "write source, write destination": (("write",), ("write",), DENIED),
    "read source, read destination": (("read",), ("read",), DENIED),
}


@pytest.fixture(scope="module")
def copy_buckets(s3: Any) -> tuple[str, str]:
    s3.create_bucket(Bucket="copy-source")
    s3.create_bucket(Bucket="copy-target")
    s3.put_object(Bucket="copy-source", Key="original", Body=b"to be copied")
    return "copy-source", "copy-target"


@pytest.mark.parametrize("case", list(COPY_CASES))
def test_a_copy_needs_read_on_the_source_and_write_on_the_destination(
    cluster: LocalCluster, s3: Any, admin: Client, copy_buckets: tuple[str, str], case: str
) -> None:
    source_rights, target_rights, expected = COPY_CASES[case]
    key = new_key(admin, "copier")
    for bucket, rights in zip(copy_buckets, (source_rights, target_rights), strict=True):
        if rights:
            admin.accounts.allow(bucket, key.access_key_id, **dict.fromkeys(rights, True))
    client = s3_client(cluster, key)
    target = f"copy-{len(case)}-{new_id()[:6]}"
    source = {"Bucket": copy_buckets[0], "Key": "original"}
    got = outcome(lambda: client.copy_object(Bucket=copy_buckets[1], Key=target, CopySource=source))
    assert got == expected
    stored = keys_of(s3, copy_buckets[1])
    assert (target in stored) is (expected == OK)
    if expected == OK:
        copied = s3.get_object(Bucket=copy_buckets[1], Key=target)["Body"].read()
        assert copied == b"to be copied"


# -- signatures --------------------------------------------------------------------------------


def raw_call(
    url: str,
    method: str,
    path: str,
    credentials: Credentials | None = TEST_ROOT,
    region: str = "us-east-1",
    now: datetime | None = None,
) -> tuple[int, bytes]:
    """A request with urllib, signed by our signer (None: unsigned); its status and body."""
    headers: dict[str, str] = {}
    if credentials is not None:
        headers = sign_request(
            method, url + path, {}, UNSIGNED_PAYLOAD,
            credentials.access_key_id, credentials.secret_access_key, region, now,
        )  # fmt: skip
    request = urllib.request.Request(url + path, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def error_fields(body: bytes) -> Mapping[str, str]:
    root = ET.fromstring(body)
    assert root.tag == "Error", body  # no xmlns, as AWS answers (botocore needs that)
    return {child.tag: child.text or "" for child in root}


def test_a_signed_request_of_the_root_key_is_served(cluster: LocalCluster) -> None:
    """The control for the refusals below: the same helper, rightly signed, works."""
    status, _ = raw_call(cluster.s3_url, "GET", "/")
    assert status == 200


def test_an_unsigned_request_is_refused(cluster: LocalCluster) -> None:
    status, body = raw_call(cluster.s3_url, "GET", f"/{MATRIX_BUCKET}", credentials=None)
    assert status == 403
    assert error_fields(body)["Code"] == "AccessDenied"


def test_a_wrong_secret_does_not_match(cluster: LocalCluster) -> None:
    wrong = s3_client(cluster, Credentials(TEST_ROOT.access_key_id, "x" * 40))
    with pytest.raises(ClientError) as refused:
        wrong.list_buckets()
    assert status_of(refused.value) == 403
    assert error_code_of(refused.value) == "SignatureDoesNotMatch"
    status, body = raw_call(
        cluster.s3_url, "GET", "/", Credentials(TEST_ROOT.access_key_id, "y" * 40)
    )
    fields = error_fields(body)
    assert (status, fields["Code"]) == (403, "SignatureDoesNotMatch")
    assert fields["StringToSign"].startswith("AWS4-HMAC-SHA256\n")
    assert fields["CanonicalRequest"].startswith("GET\n/\n")
    assert "y" * 40 not in body.decode(), "the secret is never echoed"


def test_an_unknown_key_is_refused(cluster: LocalCluster) -> None:
    unknown = s3_client(cluster, Credentials("DSNOSUCHKEYATALL0000", "z" * 40))
    with pytest.raises(ClientError) as refused:
        unknown.list_buckets()
    assert error_code_of(refused.value) == "InvalidAccessKeyId"


def test_a_request_signed_for_another_region_names_the_right_one(cluster: LocalCluster) -> None:
    status, body = raw_call(cluster.s3_url, "GET", "/", region="eu-west-3")
    fields = error_fields(body)
    assert (status, fields["Code"]) == (400, "AuthorizationHeaderMalformed")
    assert fields["Region"] == "us-east-1"


@pytest.mark.parametrize("skew", [timedelta(minutes=-20), timedelta(minutes=20)])
def test_a_request_20_minutes_off_is_too_skewed(cluster: LocalCluster, skew: timedelta) -> None:
    status, body = raw_call(cluster.s3_url, "GET", "/", now=datetime.now(UTC) + skew)
    assert (status, error_fields(body)["Code"]) == (403, "RequestTimeTooSkewed")


def test_a_request_10_minutes_off_is_within_the_allowed_skew(cluster: LocalCluster) -> None:
    status, _ = raw_call(cluster.s3_url, "GET", "/", now=datetime.now(UTC) - timedelta(minutes=10))
    assert status == 200


# -- a disabled key, seen by a second gateway --------------------------------------------------


async def _pg_admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def two_gateways(tmp_path: Path) -> Iterator[LocalCluster]:
    """Two gateways on one fresh PostgreSQL database (dropped afterwards)."""
    name = f"diststorage_test_{new_id()[:12]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        options = ClusterOptions(
            gateways=2, metadata_url=f"postgresql://postgres@127.0.0.1:5432/{name}"
        )
        with cluster_in(tmp_path / "two-gateways", options) as running:
            yield running
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def test_a_disabled_key_is_refused_by_another_gateway_within_the_cache_ttl(
    two_gateways: LocalCluster,
) -> None:
    admin = gateway_client(two_gateways.urls[0])
    key = granted_key(admin, "default", "read", "soon-disabled")
    first = s3_client(two_gateways, key, url=two_gateways.s3_urls[0])
    second = s3_client(two_gateways, key, url=two_gateways.s3_urls[1])
    assert outcome(lambda: second.list_objects_v2(Bucket="default")) == OK, "cached on gateway 2"
    admin.accounts.disable_key(key.access_key_id)
    disabled_at = time.monotonic()
    assert outcome(lambda: first.list_objects_v2(Bucket="default")) == "InvalidAccessKeyId"
    while (got := outcome(lambda: second.list_objects_v2(Bucket="default"))) == OK:
        assert time.monotonic() - disabled_at < KEY_CACHE_TTL_S + 1.5, "still served"
        time.sleep(0.2)
    assert got == "InvalidAccessKeyId"
    assert time.monotonic() - disabled_at <= KEY_CACHE_TTL_S + 1.5
