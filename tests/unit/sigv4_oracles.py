"""Requests signed by real clients' signers, for the verifier's tests: botocore (the oracle),
boto3 itself (captured just before it would send), and minio-py.

Each answers a ``SignedRequest`` as our gateway would receive it: the path and query as they
would go on the wire, every header, and Host as the HTTP client would send it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.auth import HmacV1QueryAuth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from minio.credentials.credentials import Credentials as MinioCredentials
from minio.signer import sign_v4_s3

from diststorage.s3auth import Claim, SignedRequest, Verified, parse_authentication, verify

KEY_ID = "DSTESTKEY00000000001"
SECRET = "s3cr3t-for-tests-only/+abcdefghijklmnopq"
REGION = "us-east-1"
ENDPOINT = "http://127.0.0.1:9000"
USER_AGENT = ("User-Agent", "test-client/1.0")


def wire_request(
    method: str, url: str, headers: Sequence[tuple[str, str]], raw_query: str | None = None
) -> SignedRequest:
    parts = urlsplit(url)
    query = parts.query if raw_query is None else raw_query
    host = [] if any(name.lower() == "host" for name, _ in headers) else [("Host", parts.netloc)]
    return SignedRequest(method, parts.path, query, [*host, *headers])


def botocore_signed(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]] = (),
    body: bytes = b"",
    region: str = REGION,
    secret: str = SECRET,
) -> SignedRequest:
    """Signed by botocore's S3SigV4Auth at the current time; repeated headers stay repeated."""
    request = AWSRequest(method=method, url=url, data=body)
    for name, value in headers:
        request.headers[name] = value  # botocore's HTTPHeaders keeps repeated assignments
    S3SigV4Auth(Credentials(KEY_ID, secret), "s3", region).add_auth(request)
    return wire_request(method, request.url, [*request.headers.items(), USER_AGENT])


def botocore_presigned(
    method: str, url: str, expires_s: int = 3600, region: str = REGION
) -> SignedRequest:
    request = AWSRequest(method=method, url=url)
    S3SigV4QueryAuth(Credentials(KEY_ID, SECRET), "s3", region, expires=expires_s).add_auth(request)
    return wire_request(method, request.url, [USER_AGENT])


def botocore_presigned_v2(
    method: str,
    url: str,
    headers: Sequence[tuple[str, str]] = (),
    expires_s: int = 3600,
    auth_path: str | None = None,
) -> str:
    request = AWSRequest(method=method, url=url, auth_path=auth_path)
    for name, value in headers:
        request.headers[name] = value
    HmacV1QueryAuth(Credentials(KEY_ID, SECRET), expires=expires_s).add_auth(request)
    return str(request.url)


def minio_signed(
    method: str, url: str, headers: dict[str, str | list[str]], payload_sha256: str
) -> SignedRequest:
    now = datetime.now(UTC).replace(microsecond=0)
    parts = urlsplit(url)
    signing: dict[str, str | list[str] | tuple[str]] = {
        **headers,
        "Host": parts.netloc,
        "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"),
        "x-amz-content-sha256": payload_sha256,
    }
    signed = sign_v4_s3(
        method=method,
        url=parts,
        region=REGION,
        headers=signing,
        credentials=MinioCredentials(KEY_ID, SECRET),
        content_sha256=payload_sha256,
        date=now,
    )
    wire = [
        (name, item)
        for name, value in signed.items()
        if name != "Host"
        for item in ([value] if isinstance(value, str) else value)
    ]
    return wire_request(method, url, wire)


class Captured(Exception):
    def __init__(self, request: Any) -> None:
        super().__init__("captured")
        self.request = request


def boto3_client(endpoint: str = ENDPOINT, **config: Any) -> Any:
    client = boto3.client(
        "s3",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 0}, **config),
    )

    def capture(request: Any, **_: Any) -> None:
        raise Captured(request)

    client.meta.events.register("before-send.s3.*", capture)
    return client


def boto3_sent(
    call: Callable[[Any], object], endpoint: str = ENDPOINT
) -> tuple[SignedRequest, bytes]:
    """What boto3 would send for ``call(client)``, captured where it would hit the network."""
    with pytest.raises(Captured) as caught:
        call(boto3_client(endpoint))
    prepared = caught.value.request
    headers = [
        (name, value.decode() if isinstance(value, bytes) else value)
        for name, value in prepared.headers.items()
    ]
    body = prepared.body
    if hasattr(body, "read"):
        body = body.read()
    return wire_request(prepared.method, prepared.url, headers), bytes(body or b"")


def signed_at(request: SignedRequest) -> datetime:
    """The request's X-Amz-Date (header or query)."""
    for name, value in request.headers:
        if name.lower() == "x-amz-date":
            return datetime.strptime(value, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    for part in request.raw_query.split("&"):
        if part.startswith("X-Amz-Date="):
            return datetime.strptime(part[11:], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    raise AssertionError("no X-Amz-Date")


def claim_of(request: SignedRequest, now: datetime | None = None) -> Claim:
    claim = parse_authentication(request, now or signed_at(request))
    assert claim is not None
    return claim


def accepted(request: SignedRequest, now: datetime | None = None, secret: str = SECRET) -> Verified:
    when = now or signed_at(request)
    return verify(claim_of(request, when), secret, REGION, when)
