"""Our SigV4 signer gives botocore's signatures for the same requests (botocore is the
oracle: the signer shares its canonicalisation with the verifier, so checking one against the
other would prove nothing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from sigv4_oracles import ENDPOINT, KEY_ID, REGION, SECRET, accepted, wire_request

from diststorage.s3auth import presign_url, sign_request

URLS = [
    f"{ENDPOINT}/bucket/{quote('a b+c!(x)/한글', safe='/~')}",
    f"{ENDPOINT}/bucket?list-type=2&prefix=a%2Fb%20c&delimiter=%2F",
    f"{ENDPOINT}/bucket/key?uploads",
    "https://s3.example.com/bucket/key?partNumber=2&uploadId=u%2F1",
    "http://s3.example.com:80/bucket/key",
]


def botocore_headers(method: str, url: str, headers: dict[str, str], region: str) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, data=b"body", headers=headers)
    S3SigV4Auth(Credentials(KEY_ID, SECRET), "s3", region).add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("region", [REGION, "eu-west-3"])
def test_sign_request_gives_botocores_authorization(url: str, region: str) -> None:
    headers = {"Content-Type": "text/plain", "X-Amz-Meta-A": "  b   c ", "Content-MD5": "x"}
    expected = botocore_headers("PUT", url, headers, region)
    now = datetime.strptime(expected["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours = sign_request(
        "PUT", url, headers, expected["X-Amz-Content-SHA256"], KEY_ID, SECRET, region, now
    )
    assert ours["Authorization"] == expected["Authorization"]
    assert ours["X-Amz-Date"] == expected["X-Amz-Date"]


def test_a_request_we_sign_is_accepted_with_the_headers_a_client_adds() -> None:
    url = URLS[0]
    headers = {"X-Amz-Meta-Name": "café", "User-Agent": "ours/1"}
    added = sign_request("GET", url, headers, "UNSIGNED-PAYLOAD", KEY_ID, SECRET)
    verified = accepted(wire_request("GET", url, [*headers.items(), *added.items()]))
    assert verified.access_key_id == KEY_ID


@pytest.mark.parametrize("url", URLS[:2])
def test_presign_url_gives_botocores_signature(url: str) -> None:
    request = AWSRequest(method="GET", url=url)
    S3SigV4QueryAuth(Credentials(KEY_ID, SECRET), "s3", REGION, expires=900).add_auth(request)
    theirs = parse_qs(urlsplit(request.url).query)
    now = datetime.strptime(theirs["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    ours_url = presign_url("GET", url, KEY_ID, SECRET, 900, REGION, now)
    ours = parse_qs(urlsplit(ours_url).query)
    assert ours["X-Amz-Signature"] == theirs["X-Amz-Signature"]
    assert ours == theirs
    accepted(wire_request("GET", ours_url, []), now=now + timedelta(minutes=14))


@pytest.mark.parametrize("expires_s", [0, 604801])
def test_presign_url_keeps_to_a_week(expires_s: int) -> None:
    with pytest.raises(ValueError):
        presign_url("GET", URLS[0], KEY_ID, SECRET, expires_s)
