"""The S3 front end's pure parts: which bucket and key a request names (path and virtual-host
style), which operation it is, the XML it writes and reads, and the attributes it keeps."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import pytest

from diststorage.core.errors import (
    InvalidKey,
    InvalidRequest,
    MalformedXML,
    MethodNotAllowed,
    NotImplementedFeature,
    PayloadTooLarge,
)
from diststorage.gateway.auth.ports import Access
from diststorage.gateway.objects.streamed_body import StreamedBody
from diststorage.gateway.s3.addressing import Target, check_key, target_of
from diststorage.gateway.s3.attributes import attribute_headers, attributes_from_headers
from diststorage.gateway.s3.copy_source import parse_copy_source
from diststorage.gateway.s3.routing import ACCESS, Op, route
from diststorage.gateway.s3.xml import child, document, read_xml, text_of, to_bytes


@pytest.mark.parametrize(
    ("host", "path", "domain", "expected"),
    [
        ("127.0.0.1:9000", "/", None, Target("", "")),
        ("127.0.0.1:9000", "/photos", None, Target("photos", "")),
        ("127.0.0.1:9000", "/photos/", None, Target("photos", "")),
        ("127.0.0.1:9000", "/photos/a%20b/c", None, Target("photos", "a b/c")),
        ("x", "/b/a+b", None, Target("b", "a+b")),
        ("x", "/b/100%25", None, Target("b", "100%")),
        ("x", "/b//x", None, Target("b", "/x")),
        ("x", "/b/a/../b", None, Target("b", "a/../b")),
        ("x", "/b/%ED%95%9C%EA%B8%80/x", None, Target("b", "한글/x")),
        ("photos.s3.local:9000", "/a/b", "s3.local", Target("photos", "a/b")),
        ("photos.S3.local", "/", "s3.local", Target("photos", "")),
        ("s3.local:9000", "/photos/a", "s3.local", Target("photos", "a")),
        ("other.example", "/photos/a", "s3.local", Target("photos", "a")),
    ],
)
def test_the_target_is_the_raw_path_decoded_once(
    host: str, path: str, domain: str | None, expected: Target
) -> None:
    assert target_of(host, path + "?list-type=2", domain) == expected


def test_a_path_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        target_of("x", "/b/%ff", None)


@pytest.mark.parametrize("key", ["", "a" * 1025, "a\x01b", "\x00"])
def test_keys_a_put_may_not_use(key: str) -> None:
    with pytest.raises(InvalidKey):
        check_key(key)


def test_a_key_may_hold_tabs_newlines_and_a_carriage_return() -> None:
    assert check_key("a\tb\nc\rd") == "a\tb\nc\rd"


@pytest.mark.parametrize(
    ("method", "target", "query", "copy", "op"),
    [
        ("GET", Target("", ""), {}, False, Op.LIST_BUCKETS),
        ("PUT", Target("b", ""), {}, False, Op.CREATE_BUCKET),
        ("GET", Target("b", ""), {}, False, Op.LIST_OBJECTS),
        ("GET", Target("b", ""), {"list-type": "2"}, False, Op.LIST_OBJECTS_V2),
        ("GET", Target("b", ""), {"location": ""}, False, Op.GET_BUCKET_LOCATION),
        ("GET", Target("b", ""), {"uploads": ""}, False, Op.LIST_UPLOADS),
        ("POST", Target("b", ""), {"delete": ""}, False, Op.DELETE_OBJECTS),
        ("DELETE", Target("b", ""), {}, False, Op.DELETE_BUCKET),
        ("PUT", Target("b", "k"), {}, False, Op.PUT_OBJECT),
        ("PUT", Target("b", "k"), {}, True, Op.COPY_OBJECT),
        ("PUT", Target("b", "k"), {"uploadId": "u", "partNumber": "1"}, False, Op.UPLOAD_PART),
        (
            "PUT",
            Target("b", "k"),
            {"uploadId": "u", "partNumber": "1"},
            True,
            Op.UPLOAD_PART_COPY,
        ),
        ("POST", Target("b", "k"), {"uploads": ""}, False, Op.CREATE_UPLOAD),
        ("POST", Target("b", "k"), {"uploadId": "u"}, False, Op.COMPLETE_UPLOAD),
        ("DELETE", Target("b", "k"), {"uploadId": "u"}, False, Op.ABORT_UPLOAD),
        ("GET", Target("b", "k"), {"uploadId": "u"}, False, Op.LIST_PARTS),
        ("GET", Target("b", "k"), {"versionId": "null"}, False, Op.GET_OBJECT),
        ("GET", Target("b", "k"), {"response-content-type": "x"}, False, Op.GET_OBJECT),
        ("HEAD", Target("b", "k"), {"partNumber": "2"}, False, Op.HEAD_OBJECT),
    ],
)
def test_requests_route_to_their_operation(
    method: str, target: Target, query: dict[str, str], copy: bool, op: Op
) -> None:
    assert route(method, target, query, copy) is op


@pytest.mark.parametrize(
    ("method", "target", "query"),
    [
        ("GET", Target("b", ""), {"tagging": ""}),
        ("PUT", Target("b", ""), {"versioning": ""}),
        ("PUT", Target("b", "k"), {"tagging": ""}),
        ("GET", Target("b", "k"), {"versionId": "3"}),
        ("PUT", Target("b", "k"), {"uploadId": "u"}),
        ("POST", Target("b", ""), {}),
    ],
)
def test_features_we_do_not_offer_are_not_implemented(
    method: str, target: Target, query: dict[str, str]
) -> None:
    with pytest.raises(NotImplementedFeature):
        route(method, target, query, False)


def test_the_service_takes_only_list_buckets() -> None:
    with pytest.raises(MethodNotAllowed):
        route("PUT", Target("", ""), {}, False)


def test_every_operation_names_its_right() -> None:
    assert set(ACCESS) == set(Op)
    assert ACCESS[Op.DELETE_BUCKET] is Access.OWNER
    reads = {op for op, access in ACCESS.items() if access is Access.READ}
    assert Op.GET_OBJECT in reads and Op.LIST_PARTS in reads and Op.PUT_OBJECT not in reads


def test_a_carriage_return_goes_out_as_a_character_reference() -> None:
    root = document("ListBucketResult")
    child(root, "Key", "a\rb")
    body = to_bytes(root)
    assert b"a&#13;b" in body and b"\r" not in body
    parsed = ET.fromstring(body)
    assert parsed[0].text == "a\rb"


def _xml(data: bytes, max_bytes: int = 1 << 20) -> ET.Element:
    async def pieces() -> AsyncIterator[bytes]:
        yield data

    return asyncio.run(read_xml(StreamedBody(pieces()), max_bytes))


def test_xml_bodies_with_and_without_the_namespace_read_alike() -> None:
    plain = _xml(b"<Delete><Quiet>true</Quiet></Delete>")
    spaced = _xml(
        b'<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Quiet>true</Quiet></Delete>'
    )
    assert text_of(plain, "Quiet") == text_of(spaced, "Quiet") == "true"


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object>",
        b"not xml",
        b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]><d>&b;</d>',
    ],
)
def test_bodies_that_are_not_plain_xml_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedXML):
        _xml(body)


def test_an_xml_body_past_its_cap_is_refused() -> None:
    with pytest.raises(PayloadTooLarge):
        _xml(b"<a>" + b"x" * 2000 + b"</a>", max_bytes=1000)


def test_attributes_keep_metadata_and_representation_headers_without_aws_chunked() -> None:
    attrs = attributes_from_headers(
        {
            "X-Amz-Meta-Color": "blue",
            "x-amz-meta-Größe": "groß",
            "Content-Encoding": "aws-chunked,gzip",
            "Cache-Control": "no-cache",
            "Content-Type": "text/plain",
        }
    )
    assert attrs.user_meta == (("color", "blue"), ("größe", "groß"))
    assert attribute_headers(attrs) == {
        "x-amz-meta-color": "blue",
        "x-amz-meta-größe": "groß",
        "Content-Encoding": "gzip",
        "Cache-Control": "no-cache",
    }
    assert attribute_headers(attributes_from_headers({"Content-Encoding": "aws-chunked"})) == {}


def test_user_metadata_over_two_kib_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        attributes_from_headers({"x-amz-meta-big": "x" * 2100})


@pytest.mark.parametrize(
    ("header", "bucket", "key"),
    [
        ("photos/a%20b.jpg", "photos", "a b.jpg"),
        ("/photos/%ED%95%9C.jpg", "photos", "한.jpg"),
        ("/photos/dir/a?versionId=null", "photos", "dir/a"),
    ],
)
def test_copy_sources_are_decoded_once(header: str, bucket: str, key: str) -> None:
    source = parse_copy_source(header)
    assert (source.bucket, source.key) == (bucket, key)


@pytest.mark.parametrize("header", ["photos", "/photos/", "%ff/x"])
def test_copy_sources_without_bucket_and_key_are_refused(header: str) -> None:
    with pytest.raises(InvalidRequest):
        parse_copy_source(header)
