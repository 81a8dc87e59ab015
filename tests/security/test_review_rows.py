"""The review's "Bad inputs tried" rows that got a 500, a 503 or no answer at all, each now
answered with its precise 4xx on a real gateway (SECURITY-REVIEW.md, "Bad inputs tried, and
the answer each got"). The slow-client rows are in ``test_slow_clients``."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import error_code, error_code_of, status_of

from diststorage.client import Client

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster


@pytest.mark.parametrize(
    "limit",
    ["%C2%B2", "%D9%A1", "9" * 5000, "%EF%BC%91"],
    ids=["superscript-two", "arabic-indic-one", "5000-nines", "full-width-one"],
)
def test_listing_limit_in_other_digits_is_400(http: Client, limit: str) -> None:
    """Was 500 (``²``, 5 000 nines) or 200 (Arabic-Indic 1): only ASCII digits are numbers."""
    response = http.request("GET", f"/?limit={limit}")
    assert response.status == 400, response.body[:300]
    assert error_code(response) == "invalid_request"


def test_long_content_type_is_400(http: Client) -> None:
    """Was 503 "metadata database error" on PostgreSQL (its column is 255 wide)."""
    response = http.put("rows/long-type", b"x", {"Content-Type": "a/" + "b" * 300})
    assert response.status == 400, response.body[:300]
    assert error_code(response) == "invalid_request"
    assert "rows/long-type" not in http.list_keys("rows/")
    assert http.put("rows/widest-type", b"x", {"Content-Type": "a/" + "b" * 253}).status == 201


def test_long_content_type_on_s3_is_400(s3: Any) -> None:
    s3.create_bucket(Bucket="rows")
    with pytest.raises(Exception) as refused:
        s3.put_object(Bucket="rows", Key="k", Body=b"x", ContentType="a/" + "b" * 300)
    assert status_of(refused.value) == 400
    assert error_code_of(refused.value) == "InvalidRequest"


@pytest.mark.parametrize("spec", ["replicate:32", "ec:4+28"])
def test_policy_wider_than_allowed_is_400(http: Client, spec: str) -> None:
    """Was 503 "needs 32 nodes": no cluster state makes such a policy one a client may ask
    for, so retrying (what a 503 invites) cannot help."""
    response = http.put("rows/wide", b"x" * 200_000, {"X-Redundancy": spec})
    assert response.status == 400, response.body[:300]
    assert "rows/wide" not in http.list_keys("rows/")
