"""Bucket operations through boto3 against a real cluster: ListBuckets (everything for an
admin key, only the granted buckets for any other), Create/Head/DeleteBucket with their
errors and CreateBucketConfiguration, and the location, versioning, ACL and policy answers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from conftest import TEST_ROOT, error_code_of, gateway_client, s3_client, status_of

from diststorage.client import Client, Credentials
from diststorage.local import LocalCluster

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster

REGION = "us-east-1"


@pytest.fixture(scope="module")
def http(cluster: LocalCluster) -> Client:
    return gateway_client(cluster.url)


def created_key(http: Client, name: str, **flags: bool) -> Credentials:
    made = http.accounts.create_key(name, **flags)
    return Credentials(made["access_key_id"], made["secret_access_key"])


def replacing_body(client: Any, operation: str, body: bytes) -> None:
    """Makes the client send ``body`` instead of what it serialised for ``operation``; it is
    signed as sent (botocore hashes the body when it signs)."""

    def replace(request: Any, **_: Any) -> None:
        request.data = body
        for name in ("Content-Length", "Content-MD5"):
            if name in request.headers:
                del request.headers[name]

    client.meta.events.register(f"before-sign.s3.{operation}", replace)


def raises_code(call: Callable[[], Any]) -> tuple[int, str]:
    with pytest.raises(ClientError) as caught:
        call()
    return status_of(caught.value), error_code_of(caught.value)


# -- create, head, delete --------------------------------------------------------------------


def test_a_bucket_is_created_headed_listed_and_deleted(s3: Any) -> None:
    before = datetime.now(UTC) - timedelta(seconds=5)
    made = s3.create_bucket(Bucket="life-cycle")
    assert made["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert made["Location"] == "/life-cycle"
    head = s3.head_bucket(Bucket="life-cycle")
    assert head["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"] == REGION
    listed = {b["Name"]: b["CreationDate"] for b in s3.list_buckets()["Buckets"]}
    assert before <= listed["life-cycle"] <= datetime.now(UTC) + timedelta(seconds=5)
    deleted = s3.delete_bucket(Bucket="life-cycle")
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert raises_code(lambda: s3.head_bucket(Bucket="life-cycle")) == (404, "404")
    assert "life-cycle" not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    assert raises_code(lambda: s3.delete_bucket(Bucket="life-cycle")) == (404, "NoSuchBucket")


def test_a_location_constraint_must_be_this_servers_region(s3: Any) -> None:
    s3.create_bucket(Bucket="in-region", CreateBucketConfiguration={"LocationConstraint": REGION})
    assert s3.get_bucket_location(Bucket="in-region")["LocationConstraint"] is None
    assert raises_code(
        lambda: s3.create_bucket(
            Bucket="elsewhere", CreateBucketConfiguration={"LocationConstraint": "eu-west-1"}
        )
    ) == (400, "InvalidLocationConstraint")
    assert raises_code(lambda: s3.head_bucket(Bucket="elsewhere")) == (404, "404")


def test_a_configuration_that_is_not_one_is_malformed_xml(cluster: LocalCluster) -> None:
    client = s3_client(cluster)
    replacing_body(client, "CreateBucket", b"<CreateBucketConfiguration><Location")
    assert raises_code(lambda: client.create_bucket(Bucket="bad-xml")) == (400, "MalformedXML")
    other = s3_client(cluster)
    replacing_body(other, "CreateBucket", b"<Delete><Quiet>true</Quiet></Delete>")
    assert raises_code(lambda: other.create_bucket(Bucket="bad-xml")) == (400, "MalformedXML")
    bomb = s3_client(cluster)
    replacing_body(bomb, "CreateBucket", XML_BOMB)
    assert raises_code(lambda: bomb.create_bucket(Bucket="bad-xml")) == (400, "MalformedXML")
    assert "bad-xml" not in {b["Name"] for b in client.list_buckets()["Buckets"]}


XML_BOMB = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b"<CreateBucketConfiguration><LocationConstraint>&lol3;</LocationConstraint>"
    b"</CreateBucketConfiguration>"
)


@pytest.mark.parametrize(
    "name", ["ab", "UpperCase", "under_score", "-leading", "a..b", "192.168.1.1", "x" * 64]
)
def test_a_name_s3_refuses_is_invalid_bucket_name(s3: Any, name: str) -> None:
    assert raises_code(lambda: s3.create_bucket(Bucket=name)) == (400, "InvalidBucketName")


def test_creating_a_taken_name_says_whose_it_is(cluster: LocalCluster, http: Client) -> None:
    s3 = s3_client(cluster)
    s3.create_bucket(Bucket="taken")
    assert raises_code(lambda: s3.create_bucket(Bucket="taken")) == (409, "BucketAlreadyOwnedByYou")
    other = s3_client(cluster, created_key(http, "another-owner", can_create_buckets=True))
    assert raises_code(lambda: other.create_bucket(Bucket="taken")) == (409, "BucketAlreadyExists")
    assert raises_code(lambda: other.create_bucket(Bucket="default")) == (
        409,
        "BucketAlreadyExists",
    )


def test_a_key_without_the_create_flag_may_not_create(cluster: LocalCluster, http: Client) -> None:
    s3 = s3_client(cluster, created_key(http, "no-create", can_create_buckets=False))
    assert raises_code(lambda: s3.create_bucket(Bucket="not-mine")) == (403, "AccessDenied")


def test_a_bucket_holding_objects_is_not_deleted(s3: Any) -> None:
    s3.create_bucket(Bucket="still-full")
    s3.put_object(Bucket="still-full", Key="k", Body=b"x")
    assert raises_code(lambda: s3.delete_bucket(Bucket="still-full")) == (409, "BucketNotEmpty")
    s3.delete_object(Bucket="still-full", Key="k")
    s3.delete_bucket(Bucket="still-full")
    assert raises_code(lambda: s3.head_bucket(Bucket="still-full")) == (404, "404")


def test_the_native_apis_bucket_stays(s3: Any) -> None:
    assert raises_code(lambda: s3.delete_bucket(Bucket="default")) == (400, "InvalidRequest")
    s3.head_bucket(Bucket="default")


# -- who sees which bucket -------------------------------------------------------------------


def test_list_buckets_shows_a_key_only_its_granted_buckets(
    cluster: LocalCluster, http: Client
) -> None:
    root = s3_client(cluster)
    for name in ("granted-one", "not-granted"):
        root.create_bucket(Bucket=name)
    reader = created_key(http, "one-bucket-reader", can_create_buckets=False)
    http.accounts.allow("granted-one", reader.access_key_id, read=True)
    listed = s3_client(cluster, reader).list_buckets()
    assert [b["Name"] for b in listed["Buckets"]] == ["granted-one"]
    assert listed["Owner"] == {"ID": reader.access_key_id, "DisplayName": "one-bucket-reader"}
    everything = {b["Name"] for b in root.list_buckets()["Buckets"]}
    assert {"default", "granted-one", "not-granted"} <= everything
    assert root.list_buckets()["Owner"]["ID"] == TEST_ROOT.access_key_id


def test_a_creator_owns_its_bucket_and_sees_it(cluster: LocalCluster, http: Client) -> None:
    creator = created_key(http, "creator", can_create_buckets=True)
    s3 = s3_client(cluster, creator)
    s3.create_bucket(Bucket="created-by-a-key")
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["created-by-a-key"]
    owner = s3.get_bucket_acl(Bucket="created-by-a-key")["Owner"]
    assert owner == {"ID": creator.access_key_id, "DisplayName": "creator"}
    s3.delete_bucket(Bucket="created-by-a-key")
    assert s3.list_buckets()["Buckets"] == []


def test_bucket_reads_need_a_grant(cluster: LocalCluster, http: Client) -> None:
    stranger = s3_client(cluster, created_key(http, "stranger", can_create_buckets=False))
    calls: list[Callable[[], Any]] = [
        lambda: stranger.get_bucket_location(Bucket="default"),
        lambda: stranger.get_bucket_versioning(Bucket="default"),
        lambda: stranger.get_bucket_acl(Bucket="default"),
        lambda: stranger.get_bucket_policy(Bucket="default"),
        lambda: stranger.delete_bucket(Bucket="default"),
    ]
    for call in calls:
        assert raises_code(call) == (403, "AccessDenied")
    assert raises_code(lambda: stranger.head_bucket(Bucket="default")) == (403, "403")


def test_deleting_a_bucket_needs_the_owner_right(cluster: LocalCluster, http: Client) -> None:
    s3_client(cluster).create_bucket(Bucket="owned-elsewhere")
    writer = created_key(http, "writer-only", can_create_buckets=False)
    http.accounts.allow("owned-elsewhere", writer.access_key_id, read=True, write=True)
    client = s3_client(cluster, writer)
    client.head_bucket(Bucket="owned-elsewhere")
    assert raises_code(lambda: client.delete_bucket(Bucket="owned-elsewhere")) == (
        403,
        "AccessDenied",
    )


def test_list_buckets_by_prefix_and_in_pages(cluster: LocalCluster, s3: Any) -> None:
    names = [f"paged-{i}" for i in range(5)]
    for name in names:
        s3.create_bucket(Bucket=name)
    by_prefix = s3.list_buckets(Prefix="paged-")
    assert [b["Name"] for b in by_prefix["Buckets"]] == names
    assert by_prefix["Prefix"] == "paged-" and "ContinuationToken" not in by_prefix
    assert all(b["BucketRegion"] == REGION for b in by_prefix["Buckets"])
    first = s3.list_buckets(Prefix="paged-", MaxBuckets=2)
    assert [b["Name"] for b in first["Buckets"]] == names[:2]
    rest = s3.list_buckets(Prefix="paged-", ContinuationToken=first["ContinuationToken"])
    assert [b["Name"] for b in rest["Buckets"]] == names[2:]
    pages = s3.get_paginator("list_buckets").paginate(
        Prefix="paged-", PaginationConfig={"PageSize": 2}
    )
    assert [[b["Name"] for b in page["Buckets"]] for page in pages] == [
        names[:2],
        names[2:4],
        names[4:],
    ]
    unchecked = s3_client(cluster, parameter_validation=False)
    for wrong in (0, 10_001):
        with pytest.raises(ClientError) as caught:
            unchecked.list_buckets(MaxBuckets=wrong)
        assert (status_of(caught.value), error_code_of(caught.value)) == (400, "InvalidRequest")
    for name in names:
        s3.delete_bucket(Bucket=name)


# -- configuration answers -------------------------------------------------------------------


def test_location_versioning_and_policy(s3: Any) -> None:
    location = s3.get_bucket_location(Bucket="default")
    assert location["LocationConstraint"] is None  # us-east-1 is the unnamed region
    versioning = s3.get_bucket_versioning(Bucket="default")
    assert "Status" not in versioning and "MFADelete" not in versioning
    assert raises_code(lambda: s3.get_bucket_policy(Bucket="default")) == (
        404,
        "NoSuchBucketPolicy",
    )
    assert raises_code(lambda: s3.get_bucket_location(Bucket="no-such-bucket")) == (
        404,
        "NoSuchBucket",
    )


def test_the_location_document_is_empty_for_us_east_1(cluster: LocalCluster) -> None:
    s3 = s3_client(cluster)
    bodies: list[bytes] = []
    s3.meta.events.register(
        "after-call.s3.GetBucketLocation",
        lambda http_response, **_: bodies.append(http_response.content),
    )
    s3.get_bucket_location(Bucket="default")
    root = ET.fromstring(bodies[0])
    assert root.tag == "{http://s3.amazonaws.com/doc/2006-03-01/}LocationConstraint"
    assert not root.text and len(root) == 0


def test_acls_are_canned_private(cluster: LocalCluster, s3: Any) -> None:
    root_owner = {"ID": TEST_ROOT.access_key_id, "DisplayName": "root"}
    acl = s3.get_bucket_acl(Bucket="default")
    assert acl["Owner"] == root_owner
    assert acl["Grants"] == [
        {"Grantee": {**root_owner, "Type": "CanonicalUser"}, "Permission": "FULL_CONTROL"}
    ]
    assert gateway_client(cluster.url).put("acl-object", b"x").status == 201
    object_acl = s3.get_object_acl(Bucket="default", Key="acl-object")
    assert object_acl["Owner"] == root_owner
    assert object_acl["Grants"] == acl["Grants"]
    assert raises_code(lambda: s3.get_object_acl(Bucket="default", Key="no-such-key")) == (
        404,
        "NoSuchKey",
    )
