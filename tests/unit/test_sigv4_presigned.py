"""Presigned URLs: SigV4 (botocore, boto3 with s3v4, minio-py) with their expiry rules, and
SigV2 (stock boto3 ``generate_presigned_url``, botocore's HmacV1QueryAuth, ``s3cmd signurl``),
which we accept on purpose (see ``s3auth/sigv2.py``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import boto3
import pytest
from botocore.config import Config
from minio.credentials.credentials import Credentials as MinioCredentials
from minio.signer import presign_v4
from sigv4_oracles import (
    ENDPOINT,
    KEY_ID,
    REGION,
    SECRET,
    USER_AGENT,
    accepted,
    botocore_presigned,
    botocore_presigned_v2,
    claim_of,
    signed_at,
    wire_request,
)

from diststorage.core.errors import (
    AccessDenied,
    AuthorizationQueryParametersError,
    RequestExpired,
    SignatureDoesNotMatch,
)
from diststorage.s3auth import AuthScheme, PayloadMode, SignedRequest, parse_authentication, verify

URL = f"{ENDPOINT}/bucket/{quote('a b+c!(x)/한글', safe='/~')}"


def presigned_url_request(
    url: str, method: str = "GET", headers: Sequence[tuple[str, str]] = ()
) -> SignedRequest:
    return wire_request(method, url, [USER_AGENT, *headers])


# -- SigV4 --------------------------------------------------------------------------------------


def test_a_presigned_url_works_at_20_minutes_of_its_hour() -> None:
    request = botocore_presigned("GET", URL, expires_s=3600)
    verified = accepted(request, now=signed_at(request) + timedelta(minutes=20))
    assert verified.presigned and verified.payload is PayloadMode.UNSIGNED
    assert verified.access_key_id == KEY_ID


def test_a_presigned_url_works_to_its_last_second_and_not_after() -> None:
    request = botocore_presigned("GET", URL, expires_s=3600)
    accepted(request, now=signed_at(request) + timedelta(seconds=3600))
    with pytest.raises(RequestExpired, match="expired") as caught:
        accepted(request, now=signed_at(request) + timedelta(seconds=3601))
    assert caught.value.s3_code == "AccessDenied"


def test_a_week_long_url_is_not_capped_by_the_15_minute_skew() -> None:
    request = botocore_presigned("GET", URL, expires_s=604800)
    accepted(request, now=signed_at(request) + timedelta(days=6, hours=23))


def test_a_url_good_for_more_than_a_week_is_refused() -> None:
    request = botocore_presigned("GET", URL, expires_s=604801)
    with pytest.raises(AuthorizationQueryParametersError, match="604800"):
        claim_of(request)


def test_a_url_dated_in_the_future_is_refused() -> None:
    request = botocore_presigned("GET", URL)
    accepted(request, now=signed_at(request) - timedelta(minutes=14))
    with pytest.raises(AccessDenied, match="not valid yet"):
        claim_of(request, now=signed_at(request) - timedelta(minutes=16))


def test_a_presigned_url_for_another_region_names_the_expected_one() -> None:
    request = botocore_presigned("GET", URL, region="eu-west-1")
    with pytest.raises(AuthorizationQueryParametersError) as caught:
        accepted(request)
    assert caught.value.region == REGION


def test_an_x_amz_header_added_to_a_presigned_url_is_refused() -> None:
    request = botocore_presigned("PUT", URL)
    added = replace(request, headers=[*request.headers, ("x-amz-meta-injected", "1")])
    with pytest.raises(AccessDenied, match="x-amz-meta-injected"):
        claim_of(added)


def test_a_tampered_presigned_url_does_not_match() -> None:
    request = botocore_presigned("GET", URL)
    with pytest.raises(SignatureDoesNotMatch):
        accepted(replace(request, raw_path="/bucket/other"))
    with pytest.raises(SignatureDoesNotMatch):
        accepted(replace(request, method="DELETE"))


@pytest.mark.parametrize("drop", ["X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires"])
def test_a_presigned_url_missing_a_parameter_is_malformed(drop: str) -> None:
    request = botocore_presigned("GET", URL)
    query = "&".join(p for p in request.raw_query.split("&") if not p.startswith(drop + "="))
    with pytest.raises(AuthorizationQueryParametersError):
        parse_authentication(replace(request, raw_query=query), signed_at(request))


def presigning_client(**config: Any) -> Any:
    """A boto3 client as users make one: stock unless ``config`` says otherwise."""
    return boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=ENDPOINT,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(**config),
    )


def test_boto3_s3v4_presigned_urls_with_response_overrides_are_accepted() -> None:
    s3v4 = presigning_client(signature_version="s3v4", s3={"addressing_style": "path"})
    url = s3v4.generate_presigned_url(
        "get_object",
        Params={
            "Bucket": "bucket",
            "Key": "dir/a b+c",
            "ResponseContentDisposition": 'attachment; filename="a b.txt"',
        },
        ExpiresIn=900,
    )
    request = presigned_url_request(url)
    assert "response-content-disposition=" in request.raw_query
    accepted(request, now=signed_at(request) + timedelta(minutes=10))
    put = s3v4.generate_presigned_url(
        "put_object", Params={"Bucket": "bucket", "Key": "k", "ContentType": "text/plain"}
    )
    accepted(presigned_url_request(put, "PUT", [("Content-Type", "text/plain")]))


def test_minio_presigned_urls_are_accepted() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    url = presign_v4(
        method="GET",
        url=urlsplit(URL),
        region=REGION,
        credentials=MinioCredentials(KEY_ID, SECRET),
        date=now,
        expires=3600,
    )
    accepted(presigned_url_request(url.geturl()), now=now + timedelta(minutes=30))


# -- SigV2 --------------------------------------------------------------------------------------


def v2_expiry(url: str) -> datetime:
    return datetime.fromtimestamp(int(parse_qs(urlsplit(url).query)["Expires"][0]), UTC)


def test_stock_boto3_presigned_urls_are_sigv2_and_accepted() -> None:
    url = presigning_client().generate_presigned_url(
        "get_object", Params={"Bucket": "bucket", "Key": "a b+c!(x)/한글"}, ExpiresIn=3600
    )
    assert "AWSAccessKeyId=" in url and "X-Amz-" not in url
    request = presigned_url_request(url)
    claim = claim_of(request, now=datetime.now(UTC))
    assert claim.scheme is AuthScheme.PRESIGNED_V2
    verified = verify(claim, SECRET, REGION, datetime.now(UTC))
    assert verified.presigned and verified.payload is PayloadMode.UNSIGNED
    with pytest.raises(RequestExpired):
        parse_authentication(request, v2_expiry(url) + timedelta(seconds=1))
    with pytest.raises(SignatureDoesNotMatch):
        verify(claim, "wrong secret", REGION, datetime.now(UTC))


def test_a_sigv2_put_url_signs_its_content_type_and_metadata() -> None:
    url = presigning_client().generate_presigned_url(
        "put_object",
        Params={
            "Bucket": "bucket",
            "Key": "k",
            "ContentType": "text/plain",
            "Metadata": {"a": "b"},
        },
    )
    now = datetime.now(UTC)
    accepted(presigned_url_request(url, "PUT"), now=now)  # the query stands in for headers
    accepted(presigned_url_request(url, "PUT", [("Content-Type", "text/plain")]), now=now)
    with pytest.raises(SignatureDoesNotMatch):
        accepted(presigned_url_request(url, "PUT", [("Content-Type", "image/png")]), now=now)
    with pytest.raises(SignatureDoesNotMatch):
        accepted(presigned_url_request(url, "GET"), now=now)


def test_sigv2_signs_sub_resources_and_virtual_hosted_buckets() -> None:
    query = "response-content-disposition=attachment%3B%20filename%3Dx&uploadId=u%2F1"
    url = botocore_presigned_v2("GET", f"{ENDPOINT}/bucket/k?{query}")
    accepted(presigned_url_request(url), now=datetime.now(UTC))
    hosted = botocore_presigned_v2("GET", "http://bucket.s3.local:9000/k", auth_path="/bucket/k")
    request = replace(presigned_url_request(hosted), bucket_in_host="bucket")
    accepted(request, now=datetime.now(UTC))
    with pytest.raises(SignatureDoesNotMatch):
        accepted(replace(request, bucket_in_host="other"), now=datetime.now(UTC))


def test_a_sigv2_url_good_for_more_than_a_week_is_refused() -> None:
    url = botocore_presigned_v2("GET", URL, expires_s=8 * 24 * 3600)
    with pytest.raises(AuthorizationQueryParametersError):
        claim_of(presigned_url_request(url), now=datetime.now(UTC))


def test_s3cmd_signurl_is_accepted(tmp_path: Path) -> None:
    config = tmp_path / "s3cfg"
    # The secret goes in a file, never on a command line.
    config.write_text(
        f"[default]\naccess_key = {KEY_ID}\nsecret_key = {SECRET}\n"
        "host_base = 127.0.0.1:9000\nhost_bucket = 127.0.0.1:9000\nuse_https = False\n"
    )
    s3cmd = Path(sys.executable).with_name("s3cmd")
    url = subprocess.run(
        [str(s3cmd), "-c", str(config), "signurl", "s3://bucket/a b+c!(x)/한글", "+3600"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.strip()
    assert url.startswith(f"{ENDPOINT}/bucket/") and "Signature=" in url
    accepted(presigned_url_request(url), now=datetime.now(UTC))
