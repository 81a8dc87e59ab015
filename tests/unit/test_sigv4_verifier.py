"""The SigV4 header verifier against real signers: botocore (S3SigV4Auth), boto3 as it sends,
and minio-py, over the corpus of keys, queries and headers S3 clients get wrong; then every
way a request must be refused."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import pytest
from sigv4_oracles import (
    ENDPOINT,
    KEY_ID,
    REGION,
    SECRET,
    USER_AGENT,
    accepted,
    boto3_sent,
    botocore_signed,
    claim_of,
    minio_signed,
    signed_at,
    wire_request,
)

from diststorage.core.errors import (
    AccessDenied,
    AuthorizationHeaderMalformed,
    InvalidRequest,
    RequestTimeTooSkewed,
    SignatureDoesNotMatch,
    UnsupportedSignature,
)
from diststorage.s3auth import PayloadMode, SignedRequest, parse_authentication, verify

KEYS = [
    "plain.txt",
    "a b",
    "a+b",
    "a%2Fb",
    "dir/~user/x",
    "!'()*",
    "한글/파일.txt",
    "café",
    "100%",
    "//x",
    "a/../b",
    "tab\tand;semi=colon&amp",
]
QUERIES = [
    "list-type=2&prefix=a%2Fb&delimiter=%2F&encoding-type=url",
    "prefix=a%2Bb%20c",
    "uploads",
    "uploadId=abc%2Fdef%3D&partNumber=3",
    "tag=b&tag=a&tag=a%20b",
    "acl=",
    "prefix=%ED%95%9C%EA%B8%80",
    "versions&key-marker=&max-keys=10",
]
HEADERS = [
    [("X-Amz-Meta-Spaces", "  a   b  c ")],
    [("X-Amz-Meta-Tabs", "a\t\tb")],
    [("X-Amz-Meta-Dup", "one"), ("X-Amz-Meta-Dup", "two")],
    [("X-Amz-Meta-Name", "café 한글")],
    [("Content-Type", "text/plain; charset=utf-8"), ("Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg==")],
    [("Range", "bytes=0-9"), ("If-None-Match", '"abc"')],
]


def object_url(key: str, query: str = "") -> str:
    # How botocore encodes a key in the path (percent_encode with "/" and "~" kept).
    return f"{ENDPOINT}/bucket/{quote(key, safe='/~')}" + (f"?{query}" if query else "")


@pytest.mark.parametrize("key", KEYS)
def test_keys_signed_by_botocore_are_accepted(key: str) -> None:
    verified = accepted(botocore_signed("PUT", object_url(key), body=b"data"))
    assert verified.access_key_id == KEY_ID
    assert verified.payload is PayloadMode.SIGNED_HEX
    assert verified.content_sha256 == hashlib.sha256(b"data").hexdigest()
    assert not verified.presigned and verified.chunk_seed is None


@pytest.mark.parametrize("key", KEYS)
def test_keys_signed_by_minio_are_accepted(key: str) -> None:
    sha = hashlib.sha256(b"").hexdigest()
    assert accepted(minio_signed("GET", object_url(key), {}, sha)).access_key_id == KEY_ID


@pytest.mark.parametrize("query", QUERIES)
def test_queries_signed_by_botocore_are_accepted(query: str) -> None:
    accepted(botocore_signed("GET", f"{ENDPOINT}/bucket?{query}"))


@pytest.mark.parametrize("headers", HEADERS, ids=lambda h: h[0][0])
def test_headers_signed_by_botocore_are_accepted(headers: list[tuple[str, str]]) -> None:
    accepted(botocore_signed("GET", object_url("k"), headers))


def test_headers_signed_by_minio_are_accepted() -> None:
    headers: dict[str, str | list[str]] = {
        "X-Amz-Meta-Spaces": "  a   b  c ",
        "X-Amz-Meta-Dup": ["one", "two"],
        "X-Amz-Meta-Name": "café 한글",
    }
    accepted(minio_signed("GET", object_url("k"), headers, hashlib.sha256(b"").hexdigest()))


@pytest.mark.parametrize(
    ("signed", "sent"),
    [
        ("prefix=a%2Fb", "prefix=a/b"),  # a slash left raw in a value
        ("prefix=a%20b", "prefix=a+b"),  # a space sent as "+"
        ("prefix=~user", "prefix=%7Euser"),  # an unreserved character encoded anyway
        ("b=2&a=1", "a=1&b=2"),  # any order
    ],
)
def test_a_query_sent_in_another_encoding_of_the_same_values_is_accepted(
    signed: str, sent: str
) -> None:
    request = botocore_signed("GET", f"{ENDPOINT}/bucket?{signed}")
    accepted(replace(request, raw_query=sent))


def test_a_path_whose_reserved_characters_arrive_decoded_is_accepted_on_retry() -> None:
    request = botocore_signed("GET", object_url("!'()*"))
    assert request.raw_path == "/bucket/%21%27%28%29%2A"
    accepted(replace(request, raw_path="/bucket/!'()*"))


def test_the_path_is_signed_as_sent_and_not_normalised() -> None:
    request = botocore_signed("GET", f"{ENDPOINT}/bucket/a/../b")
    accepted(request)
    with pytest.raises(SignatureDoesNotMatch):
        accepted(replace(request, raw_path="/bucket/b"))


def test_host_with_its_port_is_signed() -> None:
    request = botocore_signed("GET", object_url("k"))
    assert ("Host", "127.0.0.1:9000") in request.headers
    moved = [(n, "127.0.0.1:9001" if n == "Host" else v) for n, v in request.headers]
    with pytest.raises(SignatureDoesNotMatch):
        accepted(replace(request, headers=moved))


def test_the_date_header_may_stand_in_for_x_amz_date() -> None:
    request = botocore_signed("GET", object_url("k"), [("Date", "Mon, 01 Jan 2024 00:00:00 GMT")])
    names = {name.lower() for name, _ in request.headers}
    assert "date" in names and "x-amz-date" not in names
    accepted(request, now=signed_at_date(request))


def signed_at_date(request: SignedRequest) -> datetime:
    # botocore writes Date with "-0000", which Python reads as a naive time: UTC.
    return parsedate_to_datetime(dict(request.headers)["Date"]).replace(tzinfo=UTC)


def test_the_authorization_header_may_omit_the_spaces_after_its_commas() -> None:
    request = botocore_signed("GET", object_url("k"))
    squeezed = [
        (n, v.replace(", ", ",") if n == "Authorization" else v) for n, v in request.headers
    ]
    accepted(replace(request, headers=squeezed))


# -- boto3 as it sends ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.put_object(Bucket="bucket", Key="한글 a+b!(x)", Body=b"x" * 100),
        lambda c: c.put_object(
            Bucket="bucket", Key="k", Body=b"x", Metadata={"a": "  b  c  "}, ContentType="t/x"
        ),
        lambda c: c.get_object(Bucket="bucket", Key="a%2Fb c", Range="bytes=0-1"),
        lambda c: c.list_objects_v2(Bucket="bucket", Prefix="a/b c+d", Delimiter="/"),
        lambda c: c.create_multipart_upload(Bucket="bucket", Key="big"),
        lambda c: c.upload_part(
            Bucket="bucket", Key="big", UploadId="u/1=", PartNumber=2, Body=b"p"
        ),
        lambda c: c.delete_objects(Bucket="bucket", Delete={"Objects": [{"Key": "a"}]}),
        lambda c: c.head_bucket(Bucket="bucket"),
        lambda c: c.list_buckets(),
    ],
    ids=[
        "put",
        "put-meta",
        "get-range",
        "list-v2",
        "create-mpu",
        "upload-part",
        "delete-objects",
        "head-bucket",
        "list-buckets",
    ],
)
def test_what_boto3_sends_over_http_is_accepted(call: Callable[[Any], object]) -> None:
    request, body = boto3_sent(call)
    verified = accepted(request)
    assert verified.payload is PayloadMode.SIGNED_HEX
    assert verified.content_sha256 == hashlib.sha256(body).hexdigest()


def test_what_boto3_streams_over_https_is_accepted_as_an_unsigned_trailer() -> None:
    request, _ = boto3_sent(
        lambda c: c.put_object(Bucket="bucket", Key="k", Body=b"x" * 10),
        endpoint="https://127.0.0.1:9443",
    )
    verified = accepted(request)
    assert verified.payload is PayloadMode.STREAMING_UNSIGNED_TRAILER


# -- refused ------------------------------------------------------------------------------------


def test_a_request_without_authentication_claims_nothing() -> None:
    request = wire_request("GET", object_url("k"), [USER_AGENT])
    assert parse_authentication(request, datetime.now(UTC)) is None


def test_an_unsigned_x_amz_header_is_refused() -> None:
    request = botocore_signed("PUT", object_url("k"), body=b"x")
    added = replace(request, headers=[*request.headers, ("x-amz-meta-evil", "1")])
    with pytest.raises(AccessDenied, match="x-amz-meta-evil"):
        claim_of(added)


@pytest.mark.parametrize("minutes", [-16, 16])
def test_a_request_more_than_15_minutes_off_is_skewed(minutes: int) -> None:
    request = botocore_signed("GET", object_url("k"))
    when = signed_at(request) + timedelta(minutes=minutes)
    with pytest.raises(RequestTimeTooSkewed):
        parse_authentication(request, when)
    claim = claim_of(request)
    with pytest.raises(RequestTimeTooSkewed):
        verify(claim, SECRET, REGION, when)


@pytest.mark.parametrize("minutes", [-15, 15])
def test_a_request_15_minutes_off_is_still_accepted(minutes: int) -> None:
    request = botocore_signed("GET", object_url("k"))
    accepted(request, now=signed_at(request) + timedelta(minutes=minutes))


def test_a_scope_in_another_region_names_the_expected_one() -> None:
    request = botocore_signed("GET", object_url("k"), region="eu-west-1")
    with pytest.raises(AuthorizationHeaderMalformed) as caught:
        accepted(request)
    assert caught.value.region == REGION
    assert caught.value.s3_code == "AuthorizationHeaderMalformed"


def test_a_wrong_secret_does_not_match_and_shows_what_was_signed() -> None:
    request = botocore_signed("GET", object_url("a b"), secret="another secret")
    with pytest.raises(SignatureDoesNotMatch) as caught:
        accepted(request)
    error = caught.value
    assert error.string_to_sign.startswith("AWS4-HMAC-SHA256\n")
    assert error.canonical_request.startswith("GET\n/bucket/a%20b\n")
    assert SECRET not in str(error) and "another secret" not in error.message
    assert error.canonical_request not in error.message


def test_a_tampered_signed_header_does_not_match() -> None:
    request = botocore_signed("GET", object_url("k"), [("X-Amz-Meta-A", "1")])
    changed = [(n, "2" if n == "X-Amz-Meta-A" else v) for n, v in request.headers]
    with pytest.raises(SignatureDoesNotMatch):
        accepted(replace(request, headers=changed))


def authorization_replaced(request: SignedRequest, old: str, new: str) -> SignedRequest:
    headers = [(n, v.replace(old, new) if n == "Authorization" else v) for n, v in request.headers]
    return replace(request, headers=headers)


@pytest.mark.parametrize(
    ("old", "new", "error"),
    [
        ("SignedHeaders=host;", "SignedHeaders=", AuthorizationHeaderMalformed),
        ("/s3/", "/ec2/", AuthorizationHeaderMalformed),
        ("aws4_request", "aws4_reqest", AuthorizationHeaderMalformed),
        ("Signature=", "Sig=", AuthorizationHeaderMalformed),
        ("AWS4-HMAC-SHA256 ", "AWS4-ECDSA-P256-SHA256 ", UnsupportedSignature),
        ("AWS4-HMAC-SHA256 ", "Bearer ", AuthorizationHeaderMalformed),
    ],
)
def test_a_malformed_authorization_header_is_refused(
    old: str, new: str, error: type[Exception]
) -> None:
    request = botocore_signed("GET", object_url("k"))
    with pytest.raises(error):
        claim_of(authorization_replaced(request, old, new))


def test_host_must_be_signed() -> None:
    request = botocore_signed("GET", object_url("k"))
    claim = claim_of(request)
    signed = next(v for n, v in request.headers if n == "Authorization").split("SignedHeaders=")[1]
    without_host = signed.split(",")[0].replace("host;", "")
    with pytest.raises(AuthorizationHeaderMalformed, match="host"):
        claim_of(authorization_replaced(request, signed.split(",")[0], without_host))
    assert claim.access_key_id == KEY_ID


def test_a_credential_date_other_than_the_request_date_is_refused() -> None:
    request = botocore_signed("GET", object_url("k"))
    date = signed_at(request).strftime("%Y%m%d")
    with pytest.raises(AuthorizationHeaderMalformed, match="date"):
        claim_of(authorization_replaced(request, f"/{date}/", "/20000101/"))


def test_a_sigv2_authorization_header_is_refused_as_aws_does() -> None:
    request = wire_request("GET", object_url("k"), [("Authorization", "AWS KEY:c2lnbmF0dXJl")])
    with pytest.raises(InvalidRequest, match="AWS4-HMAC-SHA256"):
        parse_authentication(request, datetime.now(UTC))


def test_header_authentication_needs_x_amz_content_sha256() -> None:
    request = botocore_signed("GET", object_url("k"))
    stripped = [(n, v) for n, v in request.headers if n.lower() != "x-amz-content-sha256"]
    with pytest.raises(InvalidRequest, match="x-amz-content-sha256"):
        claim_of(replace(request, headers=stripped))


def test_two_authentication_mechanisms_are_refused() -> None:
    request = botocore_signed("GET", object_url("k"))
    with pytest.raises(InvalidRequest, match="only one"):
        claim_of(replace(request, raw_query="X-Amz-Signature=00"))
