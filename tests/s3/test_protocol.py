"""The S3 listener's protocol before any operation: signatures required, S3 XML errors with a
request id, HEAD errors without a body, unsupported features answered NotImplemented, and
path- and virtual-host-style addressing naming the same bucket."""

from __future__ import annotations

import urllib.error
import urllib.request
import xml.etree.ElementTree as ET

import pytest

from diststorage.local import LocalCluster

S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


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
    assert root.tag == "Error"  # without a namespace, as AWS writes it (botocore needs it)
    assert root.findtext("Code") == "AccessDenied"
    assert root.findtext("RequestId") == headers["x-amz-request-id"]
    assert root.findtext("Resource") == path


def test_a_refused_head_has_no_body(cluster: LocalCluster) -> None:
    status, headers, body = unsigned(cluster, "HEAD", "/default/some-key")
    assert status == 403
    assert body == b""
    assert headers["x-amz-request-id"]
