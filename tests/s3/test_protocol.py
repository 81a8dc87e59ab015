"""The S3 listener's protocol before any operation: signatures required, S3 XML errors with a
request id, HEAD errors without a body, unsupported features answered NotImplemented, and
path- and virtual-host-style addressing naming the same bucket."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest
from conftest import ClusterOptions, ClusterPool

from diststorage.local import LocalCluster

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster


def unsigned(cluster: LocalCluster, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(cluster.s3_url + path, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.parametrize("path", ["/", "/default", "/default/some-key"])
def test_an_unsigned_request_is_refused_with_an_s3_error(cluster: LocalCluster, path: str) -> None:
    status, headers, body = unsigned(cluster, "GET", path)
    assert status == 403
    assert headers["Content-Type"] == "application/xml"
    root = ET.fromstring(body)
    assert root.tag == "Error", "no namespace: botocore looks for exactly <Error>"
    assert root.findtext("Code") == "AccessDenied"
    assert root.findtext("RequestId") == headers["x-amz-request-id"]
    assert root.findtext("Resource") == path


def test_a_refused_head_has_no_body(cluster: LocalCluster) -> None:
    status, headers, body = unsigned(cluster, "HEAD", "/default/some-key")
    assert status == 403
    assert body == b""
    assert headers["x-amz-request-id"]


@pytest.fixture(scope="module")
def tls_cluster(cluster_pool: ClusterPool) -> LocalCluster:
    """The standard cluster over TLS, as the https runs of the other S3 modules use it."""
    return cluster_pool.get(ClusterOptions(tls=True))


class TestOverTls:
    """With --tls-cert/--tls-key every HTTP listener speaks only TLS."""

    def test_both_listeners_answer_over_tls(self, tls_cluster: LocalCluster) -> None:
        assert tls_cluster.tls is not None
        context = tls_cluster.tls.client_context()
        with urllib.request.urlopen(tls_cluster.url + "/_/health", context=context) as answer:
            assert answer.status == 200
        request = urllib.request.Request(tls_cluster.s3_url + "/", method="GET")
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, context=context)
        assert refused.value.code == 403

    def test_plain_http_gets_no_answer(self, tls_cluster: LocalCluster) -> None:
        for url in (tls_cluster.url, tls_cluster.s3_url):
            plain = url.replace("https://", "http://") + "/_/health"
            with pytest.raises((urllib.error.URLError, ConnectionError, http.client.HTTPException)):
                urllib.request.urlopen(plain, timeout=5)
