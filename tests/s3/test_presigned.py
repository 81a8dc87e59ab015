"""Presigned URLs (S3.md pitfall 13), made by botocore and fetched with urllib as a browser
would: no SDK, no extra header.

SigV4 (``signature_version='s3v4'``): a GET, good for X-Amz-Expires seconds and no more (also
at 20 minutes old, past the 15-minute header skew); more than 604800 s refused; an X-Amz-Date in
the future refused; PUT with and without a signed Content-Type; ``response-content-disposition``
honoured. Stock boto3's default presign, SigV2 (AWSAccessKeyId / Signature / Expires), works
too, since we accept it (src/diststorage/s3auth/sigv2.py). URLs dated in the past come from
botocore's own signer with its clock set (``SignedAt``), no clock freezing.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials as BotoCredentials
from conftest import REGION, TEST_ROOT, random_bytes, s3_client

from diststorage.local import LocalCluster

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster

BUCKET = "default"
ONE_HOUR_S = 3600
WEEK_S = 604800


@pytest.fixture(scope="module")
def s3v4(cluster: LocalCluster) -> Any:
    return s3_client(cluster, signature_version="s3v4")


@pytest.fixture(scope="module")
def stored(s3: Any) -> bytes:
    """The object the GET cases read."""
    data = random_bytes(70_000)
    s3.put_object(Bucket=BUCKET, Key="presigned/object.bin", Body=data)
    return data


def fetch(
    url: str, method: str = "GET", data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """What a browser gets for the URL: status, headers, body (error answers included)."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def code_of(body: bytes) -> str:
    root = ET.fromstring(body)
    assert root.tag == "Error", body
    return root.findtext("Code") or ""


def message_of(body: bytes) -> str:
    return ET.fromstring(body).findtext("Message") or ""


def query_of(url: str) -> dict[str, str]:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


class SignedAt(S3SigV4QueryAuth):  # type: ignore[misc]
    """botocore's SigV4 presigner with its clock set to ``moment``: the same steps as
    ``SigV4Auth.add_auth``, but the timestamp is ours instead of now."""

    def __init__(self, moment: datetime, expires_s: int) -> None:
        credentials = BotoCredentials(TEST_ROOT.access_key_id, TEST_ROOT.secret_access_key)
        super().__init__(credentials, "s3", REGION, expires=expires_s)
        self.moment = moment

    def add_auth(self, request: AWSRequest) -> None:
        request.context["timestamp"] = self.moment.strftime(SIGV4_TIMESTAMP)
        self._modify_request_before_signing(request)
        canonical = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical), request)
        self._inject_signature_to_request(request, signature)


def presigned_at(url: str, moment: datetime, expires_s: int) -> str:
    request = AWSRequest(method="GET", url=url)
    SignedAt(moment, expires_s).add_auth(request)
    signed: str = request.url
    return signed


def object_url(cluster: LocalCluster, key: str = "presigned/object.bin") -> str:
    return f"{cluster.s3_url}/{BUCKET}/{key}"


# -- SigV4 GET and its validity ----------------------------------------------------------------


def test_a_presigned_get_works_without_any_header(s3v4: Any, stored: bytes) -> None:
    url = s3v4.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "presigned/object.bin"}, ExpiresIn=3600
    )
    query = query_of(url)
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "3600"
    status, headers, body = fetch(url)
    assert status == 200
    assert body == stored
    assert headers["Content-Length"] == str(len(stored))


def test_a_presigned_url_20_minutes_old_still_works(cluster: LocalCluster, stored: bytes) -> None:
    """Its expiry is X-Amz-Expires, not the 15-minute skew of header signatures."""
    moment = datetime.now(UTC) - timedelta(minutes=20)
    status, _, body = fetch(presigned_at(object_url(cluster), moment, ONE_HOUR_S))
    assert (status, body) == (200, stored)


def test_an_expired_presigned_url_is_refused(cluster: LocalCluster, stored: bytes) -> None:
    moment = datetime.now(UTC) - timedelta(seconds=ONE_HOUR_S + 60)
    status, _, body = fetch(presigned_at(object_url(cluster), moment, ONE_HOUR_S))
    assert status == 403
    assert code_of(body) == "AccessDenied", "AWS's answer to an expired URL"
    assert "expired" in message_of(body)
    assert stored not in body


def test_a_presigned_url_for_a_whole_week_works(cluster: LocalCluster, stored: bytes) -> None:
    moment = datetime.now(UTC) - timedelta(days=6)
    status, _, body = fetch(presigned_at(object_url(cluster), moment, WEEK_S))
    assert (status, body) == (200, stored)


def test_a_presigned_url_for_more_than_a_week_is_refused(
    cluster: LocalCluster, stored: bytes
) -> None:
    status, _, body = fetch(presigned_at(object_url(cluster), datetime.now(UTC), WEEK_S + 1))
    assert status == 400
    assert code_of(body) == "AuthorizationQueryParametersError"
    assert stored not in body


def test_a_presigned_url_dated_in_the_future_is_refused(
    cluster: LocalCluster, stored: bytes
) -> None:
    moment = datetime.now(UTC) + timedelta(hours=1)
    status, _, body = fetch(presigned_at(object_url(cluster), moment, ONE_HOUR_S))
    assert status == 403
    assert code_of(body) == "AccessDenied"
    assert stored not in body


def test_a_presigned_url_with_a_wrong_secret_does_not_match(
    cluster: LocalCluster, stored: bytes
) -> None:
    wrong = boto3.client(
        "s3",
        endpoint_url=cluster.s3_url,
        region_name=REGION,
        aws_access_key_id=TEST_ROOT.access_key_id,
        aws_secret_access_key="w" * 40,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url = wrong.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "presigned/object.bin"}
    )
    status, _, body = fetch(url)
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")


def test_a_tampered_presigned_url_does_not_match(s3v4: Any, s3: Any, stored: bytes) -> None:
    s3.put_object(Bucket=BUCKET, Key="presigned/other.bin", Body=b"not for you")
    url = s3v4.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "presigned/object.bin"}
    )
    status, _, body = fetch(url.replace("object.bin", "other.bin"))
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")


def test_response_content_disposition_is_honoured(s3v4: Any, stored: bytes) -> None:
    disposition = 'attachment; filename="report 2026.bin"'
    url = s3v4.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": BUCKET,
            "Key": "presigned/object.bin",
            "ResponseContentDisposition": disposition,
            "ResponseContentType": "application/x-report",
        },
    )
    status, headers, body = fetch(url)
    assert (status, body) == (200, stored)
    assert headers["Content-Disposition"] == disposition
    assert headers["Content-Type"] == "application/x-report"


# -- SigV4 PUT ---------------------------------------------------------------------------------


def test_a_presigned_put_without_a_signed_content_type(s3v4: Any, s3: Any) -> None:
    url = s3v4.generate_presigned_url(
        "put_object", Params={"Bucket": BUCKET, "Key": "presigned/put-plain.bin"}
    )
    assert query_of(url)["X-Amz-SignedHeaders"] == "host"
    data = random_bytes(50_000)
    status, _, _ = fetch(url, "PUT", data, {"Content-Type": "application/octet-stream"})
    assert status == 200
    got = s3.get_object(Bucket=BUCKET, Key="presigned/put-plain.bin")
    assert got["Body"].read() == data


def test_a_presigned_put_with_a_signed_content_type(s3v4: Any, s3: Any) -> None:
    params = {"Bucket": BUCKET, "Key": "presigned/put-typed.txt", "ContentType": "text/plain"}
    url = s3v4.generate_presigned_url("put_object", Params=params)
    assert "content-type" in query_of(url)["X-Amz-SignedHeaders"].split(";")
    status, _, body = fetch(url, "PUT", b"other type", {"Content-Type": "image/png"})
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix="presigned/put-typed")
    assert listed.get("Contents", []) == [], "a refused PUT stored nothing"
    status, _, _ = fetch(url, "PUT", b"typed text", {"Content-Type": "text/plain"})
    assert status == 200
    got = s3.get_object(Bucket=BUCKET, Key="presigned/put-typed.txt")
    assert got["ContentType"] == "text/plain"
    assert got["Body"].read() == b"typed text"


# -- SigV2, boto3's default --------------------------------------------------------------------


@pytest.fixture(scope="module")
def stock(cluster: LocalCluster) -> Any:
    """boto3 as it comes: no signature_version, so its presigned URLs are SigV2."""
    return boto3.client(
        "s3",
        endpoint_url=cluster.s3_url,
        region_name=REGION,
        aws_access_key_id=TEST_ROOT.access_key_id,
        aws_secret_access_key=TEST_ROOT.secret_access_key,
        config=Config(s3={"addressing_style": "path"}),
    )


def test_stock_boto3_presigns_with_sigv2_and_it_works(stock: Any, stored: bytes) -> None:
    url = stock.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "presigned/object.bin"}, ExpiresIn=600
    )
    query = query_of(url)
    assert {"AWSAccessKeyId", "Signature", "Expires"} <= set(query), url
    assert "X-Amz-Signature" not in query
    status, _, body = fetch(url)
    assert (status, body) == (200, stored)


def test_a_sigv2_url_with_response_overrides_works(stock: Any, stored: bytes) -> None:
    params = {
        "Bucket": BUCKET,
        "Key": "presigned/object.bin",
        "ResponseContentDisposition": "attachment; filename=v2.bin",
    }
    status, headers, body = fetch(stock.generate_presigned_url("get_object", Params=params))
    assert (status, body) == (200, stored)
    assert headers["Content-Disposition"] == "attachment; filename=v2.bin"


def test_an_expired_sigv2_url_is_refused(stock: Any, stored: bytes) -> None:
    url = stock.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "presigned/object.bin"}, ExpiresIn=-60
    )
    status, _, body = fetch(url)
    assert status == 403
    assert code_of(body) == "AccessDenied", "AWS's answer to an expired URL"
    assert "expired" in message_of(body)


def test_a_sigv2_url_with_a_changed_expiry_does_not_match(stock: Any, stored: bytes) -> None:
    url = stock.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": "presigned/object.bin"}, ExpiresIn=60
    )
    expires = query_of(url)["Expires"]
    status, _, body = fetch(url.replace(f"Expires={expires}", f"Expires={int(expires) + 3600}"))
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")


def test_a_presigned_sigv2_put_works(stock: Any, s3: Any) -> None:
    """SigV2 signs the Content-Type, so the browser sends the one the URL was made for."""
    params = {
        "Bucket": BUCKET,
        "Key": "presigned/put-v2.bin",
        "ContentType": "application/octet-stream",
    }
    url = stock.generate_presigned_url("put_object", Params=params)
    data = random_bytes(10_000)
    status, _, body = fetch(url, "PUT", data, {"Content-Type": "text/html"})
    assert (status, code_of(body)) == (403, "SignatureDoesNotMatch")
    status, _, _ = fetch(url, "PUT", data, {"Content-Type": "application/octet-stream"})
    assert status == 200
    assert s3.get_object(Bucket=BUCKET, Key="presigned/put-v2.bin")["Body"].read() == data
