"""The pure parts of the S3 multipart handlers: the Complete body read into parts, the
request parameters of part and listing requests, copy ranges, write conditions, a Complete's
whole-object checksum, and the listing documents botocore reads back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.model import ServiceModel
from botocore.parsers import RestXMLParser
from botocore.session import get_session
from defusedxml.ElementTree import fromstring

from diststorage.core.errors import InvalidRequest, MalformedXML
from diststorage.gateway.s3.multipart import whole_object_checksum
from diststorage.gateway.s3.multipart_listing import (
    parse_parts_request,
    parse_uploads_request,
    parts_result,
    uploads_result,
)
from diststorage.gateway.s3.multipart_parts import copy_source_range, part_target
from diststorage.gateway.s3.multipart_xml import complete_result, listed_parts
from diststorage.gateway.s3.xml import to_bytes
from diststorage.meta import (
    NO_ATTRIBUTES,
    ListedPart,
    PartRecord,
    PartsPage,
    StoredChecksum,
    UploadInfo,
    UploadsPage,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
S3: ServiceModel = get_session().get_service_model("s3")


def parsed(operation: str, body: bytes) -> dict[str, Any]:
    """What botocore makes of a 200 answer of ``operation`` with this body."""
    shape = S3.operation_model(operation).output_shape
    response = {"status_code": 200, "headers": {}, "body": body}
    result: dict[str, Any] = RestXMLParser().parse(response, shape)
    return result


def complete_document(parts: str, xmlns: bool = True) -> bytes:
    ns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' if xmlns else ""
    return f"<CompleteMultipartUpload{ns}>{parts}</CompleteMultipartUpload>".encode()


@pytest.mark.parametrize("xmlns", [True, False])
def test_a_complete_body_lists_its_parts_in_order(xmlns: bool) -> None:
    body = complete_document(
        '<Part><PartNumber>3</PartNumber><ETag>"abc"</ETag></Part>'
        "<Part><ETag> def </ETag><PartNumber> 1 </PartNumber>"
        "<ChecksumCRC32>AAAAAA==</ChecksumCRC32></Part>",
        xmlns,
    )
    assert listed_parts(fromstring(body)) == [
        ListedPart(3, '"abc"'),
        ListedPart(1, "def", StoredChecksum("CRC32", "FULL_OBJECT", "AAAAAA==")),
    ]


@pytest.mark.parametrize(
    "parts",
    [
        "",
        "<Part><ETag>x</ETag></Part>",
        "<Part><PartNumber>1</PartNumber></Part>",
        "<Part><PartNumber>1</PartNumber><ETag></ETag></Part>",
        "<Part><PartNumber>-1</PartNumber><ETag>x</ETag></Part>",
        "<Part><PartNumber>1.5</PartNumber><ETag>x</ETag></Part>",
    ],
)
def test_a_complete_body_without_proper_parts_is_malformed(parts: str) -> None:
    with pytest.raises(MalformedXML):
        listed_parts(fromstring(complete_document(parts)))


def test_a_complete_result_reads_back_in_botocore() -> None:
    checksum = StoredChecksum("CRC32", "COMPOSITE", "q83vEg==-2")
    body = to_bytes(complete_result("http://h/b/k", "b", "k\rx", "00ff-2", checksum))
    result = parsed("CompleteMultipartUpload", body)
    assert (result["Key"], result["ETag"], result["Location"]) == (
        "k\rx",
        '"00ff-2"',
        "http://h/b/k",
    )
    assert (result["ChecksumCRC32"], result["ChecksumType"]) == ("q83vEg==-2", "COMPOSITE")


def test_part_requests_name_an_upload_and_a_number() -> None:
    assert part_target({"uploadId": "u", "partNumber": "17"}) == ("u", 17)
    for bad in ("", "x", "-1", "1e3", "123456"):
        with pytest.raises(InvalidRequest):
            part_target({"uploadId": "u", "partNumber": bad})


def test_a_copy_range_names_both_ends() -> None:
    assert copy_source_range(None) is None
    spec = copy_source_range("bytes=0-99")
    assert spec is not None and (spec.first, spec.last) == (0, 99)
    for bad in ("bytes=5-", "bytes=-5", "bytes=9-3", "bytes=0-1,4-5", "items=0-1", ""):
        with pytest.raises(InvalidRequest):
            copy_source_range(bad)


def test_a_complete_names_at_most_one_object_checksum() -> None:
    assert whole_object_checksum({"x-amz-checksum-type": "COMPOSITE"}) is None
    assert whole_object_checksum({"X-Amz-Checksum-Crc32": "AAAAAA==-3"}) == StoredChecksum(
        "CRC32", "FULL_OBJECT", "AAAAAA==-3"
    )
    with pytest.raises(InvalidRequest):
        whole_object_checksum({"x-amz-checksum-crc32": "a", "x-amz-checksum-sha1": "b"})


def test_list_parameters() -> None:
    assert parse_parts_request({}) == parse_parts_request({"max-parts": "1000"})
    asked = parse_parts_request({"max-parts": "5000", "part-number-marker": "7"})
    assert (asked.max_parts, asked.part_number_marker) == (1000, 7)
    with pytest.raises(InvalidRequest):
        parse_parts_request({"max-parts": "-1"})
    uploads = parse_uploads_request({"upload-id-marker": "u", "max-uploads": "3"})
    # An upload-id-marker means nothing without a key-marker.
    assert (uploads.upload_id_marker, uploads.max_uploads) == ("", 3)
    assert parse_uploads_request({"key-marker": "k", "upload-id-marker": "u"}).upload_id_marker
    with pytest.raises(InvalidRequest):
        parse_uploads_request({"encoding-type": "base64"})


def upload_info(key: str, algorithm: str | None = None) -> UploadInfo:
    return UploadInfo(
        upload_id="u1",
        namespace="b",
        key=key,
        state="open",
        initiated_at=NOW,
        last_activity_at=NOW,
        content_type="text/plain",
        attrs=NO_ATTRIBUTES,
        checksum_algorithm=algorithm,
        checksum_type=None if algorithm is None else "FULL_OBJECT",
        initiator_key="DSKEY",
    )


def test_a_parts_page_reads_back_in_botocore() -> None:
    checksum = StoredChecksum("CRC32", "FULL_OBJECT", "AAAAAA==")
    page = PartsPage(
        upload=upload_info("k", "CRC32"),
        parts=(PartRecord(2, 10, "ab" * 16, checksum, NOW), PartRecord(5, 3, "cd" * 16, None, NOW)),
        truncated=True,
        next_part_number_marker=5,
    )
    result = parsed("ListParts", to_bytes(parts_result("b", parse_parts_request({}), page)))
    assert result["IsTruncated"] and result["NextPartNumberMarker"] == 5
    assert (result["ChecksumAlgorithm"], result["ChecksumType"]) == ("CRC32", "FULL_OBJECT")
    assert result["Initiator"] == {"ID": "DSKEY", "DisplayName": "DSKEY"}
    first, second = result["Parts"]
    assert (first["PartNumber"], first["Size"], first["ETag"]) == (2, 10, '"' + "ab" * 16 + '"')
    assert first["ChecksumCRC32"] == "AAAAAA==" and "ChecksumCRC32" not in second
    assert first["LastModified"] == NOW.replace(microsecond=678000)


def test_an_uploads_page_encodes_under_encoding_type_url() -> None:
    asked = parse_uploads_request(
        {"prefix": "a b/", "delimiter": "/", "key-marker": "a b/+", "encoding-type": "url"}
    )
    page = UploadsPage(
        uploads=(upload_info("a b/100%"),),
        common_prefixes=("a b/c+d/",),
        truncated=True,
        next_key_marker="a b/c+d/",
        next_upload_id_marker=None,
    )
    result = parsed("ListMultipartUploads", to_bytes(uploads_result("b", asked, page)))
    assert (result["Prefix"], result["Delimiter"], result["KeyMarker"]) == (
        "a%20b/",
        "/",
        "a%20b/%2B",
    )
    assert result["Uploads"][0]["Key"] == "a%20b/100%25"
    assert result["CommonPrefixes"] == [{"Prefix": "a%20b/c%2Bd/"}]
    assert (result["NextKeyMarker"], result["NextUploadIdMarker"]) == ("a%20b/c%2Bd/", "")
    assert result["EncodingType"] == "url"
    plain = parse_uploads_request({"prefix": "a b/"})
    result = parsed("ListMultipartUploads", to_bytes(uploads_result("b", plain, page)))
    assert result["Uploads"][0]["Key"] == "a b/100%" and "EncodingType" not in result
