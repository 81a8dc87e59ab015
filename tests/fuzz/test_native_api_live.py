"""Schemathesis against a live gateway: requests generated from the OpenAPI document the
gateway publishes (``GET /_/openapi.json``), sent signed to a real gateway with six real
nodes. No answer may be a 5xx other than the 503 a short cluster gives, nor take longer than
``MAX_RESPONSE_S``; the gateway stays healthy throughout.

Operations that change the cluster itself (rebalance, node drain / activate / removal) are
left out: a generated node id prefix may match a real node and drain it. The document is
held to the routes by ``test_openapi_matches_routes``.
"""

from __future__ import annotations

import urllib.parse
from collections import Counter
from typing import Any

import pytest
import requests
import schemathesis
from conftest import TEST_ROOT, UNSIGNED_PAYLOAD
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from diststorage.client import Client
from diststorage.gateway.api.openapi import native_openapi
from diststorage.local import LocalCluster
from diststorage.s3auth.signer import sign_request

MAX_RESPONSE_S = 5.0
EXAMPLES_PER_OPERATION = 12

# Answers by status, so that the last test can tell the requests reached the handlers, and
# what was refused as unsigned (the signing here, not the gateway, was wrong each time so far).
STATUSES: Counter[int] = Counter()
REFUSED: list[str] = []

SCHEMA = schemathesis.openapi.from_dict(native_openapi()).exclude(
    path_regex=r"^/_/(rebalance|nodes/\{node\})"
)


def _as_received(value: str | bytes) -> str:
    """A header value as the gateway reads it: requests sends text as latin-1, and the
    gateway reads the bytes as UTF-8 (what is not, escaped). A client signs the bytes it
    sends: signing the text instead made a generated ``Range: \x92`` a 403."""
    raw = value if isinstance(value, bytes) else value.encode("latin-1")
    return raw.decode("utf-8", "surrogateescape")


class _Signed(requests.auth.AuthBase):
    """Signs each prepared request as the tests' root key, for an unsigned payload."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        assert request.url is not None and request.method is not None
        host = urllib.parse.urlsplit(request.url).netloc
        request.headers["Host"] = host
        request.headers["x-amz-content-sha256"] = UNSIGNED_PAYLOAD
        request.headers.pop("Authorization", None)
        added = sign_request(
            request.method,
            request.url,
            {name: _as_received(value) for name, value in request.headers.items()},
            UNSIGNED_PAYLOAD,
            TEST_ROOT.access_key_id,
            TEST_ROOT.secret_access_key,
        )
        request.headers.update(added)
        return request


@SCHEMA.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_server_errors_and_no_hangs(
    case: schemathesis.Case[Any], cluster: LocalCluster, http: Client
) -> None:
    response = case.call(base_url=cluster.url, auth=_Signed(), timeout=MAX_RESPONSE_S)
    elapsed_s = float(response.elapsed)
    STATUSES[response.status_code] += 1
    if response.status_code == 403:
        sent = response.request
        REFUSED.append(f"{case.method} {sent.url} {dict(sent.headers)}: {response.text}")
    assert elapsed_s < MAX_RESPONSE_S, (case.method, case.formatted_path, elapsed_s)
    if response.status_code == 503:
        return  # too few writable nodes for this policy: the cluster's answer, not a crash
    case.validate_response(response, checks=[not_a_server_error])


def test_the_gateway_is_healthy_after_the_fuzz(http: Client) -> None:
    # Signed requests got through: objects were stored and read, not every request refused.
    assert STATUSES[201] > 0 and STATUSES[200] > 0, STATUSES
    assert STATUSES[403] == 0, REFUSED
    status, health = http.health()
    assert status == 200, health
    assert health["status"] == "ok", health


@pytest.fixture(scope="module", autouse=True)
def _gateway_up(http: Client) -> None:
    assert http.health()[0] == 200


def test_the_gateway_serves_the_document(cluster: LocalCluster) -> None:
    served = requests.get(f"{cluster.url}/_/openapi.json", auth=_Signed(), timeout=10)
    assert served.status_code == 200
    assert served.json() == native_openapi()
    refused = requests.put(f"{cluster.url}/_/openapi.json", auth=_Signed(), timeout=10)
    assert refused.status_code == 405
