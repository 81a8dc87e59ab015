"""Multipart uploads through boto3 against a real cluster, over http (signed sha256 and a
checksum header) and https (boto3 streams parts as aws-chunked with an unsigned trailer):
boto3's own multipart upload_file, the md5-of-md5s ETag, gaps in part numbers, re-uploaded
parts, the Complete rules and their errors, retried Completes, Abort, ListParts and
ListMultipartUploads paging, UploadPartCopy ranges, COMPOSITE and FULL_OBJECT checksums, and
conditional Completes racing for a new key. Completed objects, and ranges across their
parts, are read back through the native API, which serves the same stored object."""

from __future__ import annotations

import base64
import hashlib
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError
from conftest import (
    TEST_ROOT,
    ClusterOptions,
    error_code_of,
    random_bytes,
    s3_client,
    status_of,
    write_random_file,
)
from s3_multipart_support import (
    BUCKET,
    MIB,
    MIN_PART,
    composite_crc32,
    crc32_b64,
    crc64nvme_b64,
    file_md5,
    listing,
    make_object,
    md5_hex,
    multipart_etag,
    object_bytes,
    unique_key,
    upload_parts,
)

from diststorage.local import LocalCluster

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster


@pytest.fixture(scope="module", params=[False, True], ids=["http", "https"])
def cluster_options(request: pytest.FixtureRequest) -> ClusterOptions:
    return ClusterOptions(tls=request.param)


def complete(s3: Any, key: str, upload_id: str, parts: dict[int, bytes], **extra: Any) -> Any:
    return s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload=listing(parts), **extra
    )


def expect_error(code: str, status: int, call: Any, **kwargs: Any) -> ClientError:
    with pytest.raises(ClientError) as raised:
        call(**kwargs)
    assert (error_code_of(raised.value), status_of(raised.value)) == (code, status)
    return raised.value


# -- whole uploads ---------------------------------------------------------------------------


def test_boto3_upload_file_goes_multipart_and_reads_back(s3: Any, tmp_path: Path) -> None:
    chunk = 8 * MIB
    big = write_random_file(tmp_path / "big", 5 * chunk + 12345)
    key = unique_key("big/file")
    config = TransferConfig(multipart_threshold=chunk, multipart_chunksize=chunk)
    s3.upload_file(str(big.path), BUCKET, key, Config=config)
    with big.path.open("rb") as source:
        parts = list(iter(lambda: source.read(chunk), b""))
    assert len(parts) == 6
    head = s3.head_object(Bucket=BUCKET, Key=key)
    assert head["ETag"] == f'"{multipart_etag(parts)}"'
    assert head["ContentLength"] == big.size
    # s3transfer downloads a big object in ranged GETs, validating what checksums come back.
    target = tmp_path / "back"
    s3.download_file(BUCKET, key, str(target), Config=config)
    assert file_md5(target) == big.md5
    second = s3.head_object(Bucket=BUCKET, Key=key, PartNumber=2)
    assert (second["ContentLength"], second["PartsCount"]) == (chunk, 6)


def test_parts_with_gaps_complete_into_one_object(s3: Any, cluster: LocalCluster) -> None:
    key = unique_key("gaps")
    parts = {1: random_bytes(MIN_PART), 3: random_bytes(MIN_PART + 17), 7: random_bytes(1234)}
    upload_id = upload_parts(s3, key, parts, ContentType="video/mp4", Metadata={"colour": "blue"})
    result = complete(s3, key, upload_id, parts)
    assert result["ETag"] == f'"{multipart_etag(parts.values())}"'
    assert (result["Bucket"], result["Key"]) == (BUCKET, key)
    assert result["Location"] == f"{cluster.s3_url}/{BUCKET}/{key}"
    answer = s3.get_object(Bucket=BUCKET, Key=key)
    assert answer["Body"].read() == b"".join(parts.values())
    assert (answer["ContentType"], answer["Metadata"]) == ("video/mp4", {"colour": "blue"})
    assert answer["ETag"] == result["ETag"]


@pytest.mark.parametrize("stem", ["a b+c%d/ünï/", "//x/../y\rz"])
def test_keys_that_need_encoding(s3: Any, stem: str) -> None:
    key = unique_key(stem)
    parts = {1: random_bytes(MIN_PART), 2: b"end"}
    upload_id = upload_parts(s3, key, parts)
    page = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)
    assert page["Key"] == key
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=stem)["Uploads"]
    assert [u["Key"] for u in uploads] == [key]
    result = complete(s3, key, upload_id, parts)
    assert result["Key"] == key
    location = urllib.parse.urlsplit(result["Location"])
    assert urllib.parse.unquote(location.path) == f"/{BUCKET}/{key}"
    assert object_bytes(s3, key) == b"".join(parts.values())


def test_an_empty_part_makes_an_empty_object(s3: Any) -> None:
    key = unique_key("empty")
    upload_id = upload_parts(s3, key, {1: b""})
    [part] = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)["Parts"]
    assert (part["Size"], part["ETag"]) == (0, f'"{md5_hex(b"")}"')
    result = complete(s3, key, upload_id, {1: b""})
    assert result["ETag"] == f'"{multipart_etag([b""])}"'
    assert object_bytes(s3, key) == b""


def test_a_part_uploaded_again_replaces_the_first(s3: Any) -> None:
    key = unique_key("again")
    first, second, last = random_bytes(MIN_PART), random_bytes(MIN_PART), b"tail"
    upload_id = upload_parts(s3, key, {1: first, 2: last})
    answer = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=1, Body=second)
    assert answer["ETag"] == f'"{md5_hex(second)}"'
    expect_error(
        "InvalidPart",
        400,
        complete,
        s3=s3,
        key=key,
        upload_id=upload_id,
        parts={1: first, 2: last},
    )
    complete(s3, key, upload_id, {1: second, 2: last})
    assert object_bytes(s3, key) == second + last


@pytest.fixture(scope="module")
def four_parts(s3: Any) -> tuple[str, bytes]:
    """A completed object of parts of 5 MiB, 5 MiB + 1, 5 MiB and 1000 bytes."""
    key = unique_key("ranges")
    parts = {
        1: random_bytes(MIN_PART),
        2: random_bytes(MIN_PART + 1),
        3: random_bytes(MIN_PART),
        4: random_bytes(1000),
    }
    complete(s3, key, upload_parts(s3, key, parts), parts)
    return key, b"".join(parts.values())


P1, P2 = MIN_PART, 2 * MIN_PART + 1


@pytest.mark.parametrize(
    ("asked", "first", "end"),
    [
        (f"bytes={P1 - 1}-{P1 - 1}", P1 - 1, P1),
        (f"bytes={P1}-{P1}", P1, P1 + 1),
        (f"bytes={P1 - 10}-{P2 + 10}", P1 - 10, P2 + 11),
        (f"bytes=100-{P2 + MIN_PART + 500}", 100, P2 + MIN_PART + 501),
        ("bytes=-1500", P2 + MIN_PART - 500, P2 + MIN_PART + 1000),
        (f"bytes={P2 + MIN_PART + 900}-99999999999", P2 + MIN_PART + 900, P2 + MIN_PART + 1000),
    ],
    ids=["last-of-1", "first-of-2", "across-3", "across-4", "suffix", "clamped"],
)
def test_ranges_of_a_completed_object_cross_its_parts(
    s3: Any, four_parts: tuple[str, bytes], asked: str, first: int, end: int
) -> None:
    key, data = four_parts
    answer = s3.get_object(Bucket=BUCKET, Key=key, Range=asked)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert answer["ContentRange"] == f"bytes {first}-{end - 1}/{len(data)}"
    assert answer["Body"].read() == data[first:end]


def test_a_range_past_a_completed_object_is_not_satisfiable(
    s3: Any, four_parts: tuple[str, bytes]
) -> None:
    key, data = four_parts
    asked = {"Bucket": BUCKET, "Key": key, "Range": f"bytes={len(data)}-"}
    expect_error("InvalidRange", 416, s3.get_object, **asked)


@pytest.mark.parametrize("number", [1, 2, 3, 4])
def test_each_part_of_a_completed_object_reads_by_number(
    s3: Any, four_parts: tuple[str, bytes], number: int
) -> None:
    key, data = four_parts
    starts = [0, P1, P2, P2 + MIN_PART, len(data)]
    first, end = starts[number - 1], starts[number]
    answer = s3.get_object(Bucket=BUCKET, Key=key, PartNumber=number)
    assert (answer["PartsCount"], answer["ContentRange"]) == (
        4,
        f"bytes {first}-{end - 1}/{len(data)}",
    )
    assert answer["Body"].read() == data[first:end]


# -- Complete's rules ------------------------------------------------------------------------


def test_every_part_but_the_last_must_be_5_mib(s3: Any) -> None:
    key = unique_key("small")
    parts = {1: random_bytes(MIN_PART - 1), 2: random_bytes(10)}
    upload_id = upload_parts(s3, key, parts)
    expect_error("EntityTooSmall", 400, complete, s3=s3, key=key, upload_id=upload_id, parts=parts)
    # The failed Complete left the upload open; a last part alone may be small.
    complete(s3, key, upload_id, {1: parts[1]})


@pytest.mark.parametrize("quoted", [True, False], ids=["quoted", "unquoted"])
def test_an_etag_that_is_not_the_parts_is_an_invalid_part(s3: Any, quoted: bool) -> None:
    key = unique_key("etags")
    data = random_bytes(100)
    upload_id = upload_parts(s3, key, {1: data})

    def listed(etag: str, number: int = 1) -> dict[str, Any]:
        shown = f'"{etag}"' if quoted else etag
        return {"Parts": [{"PartNumber": number, "ETag": shown}]}

    arguments = {"Bucket": BUCKET, "Key": key, "UploadId": upload_id}
    call = s3.complete_multipart_upload
    expect_error("InvalidPart", 400, call, **arguments, MultipartUpload=listed(md5_hex(b"x")))
    expect_error("InvalidPart", 400, call, **arguments, MultipartUpload=listed(md5_hex(data), 2))
    result = call(**arguments, MultipartUpload=listed(md5_hex(data)))
    assert result["ETag"] == f'"{multipart_etag([data])}"'


def test_parts_listed_out_of_order_are_refused(s3: Any) -> None:
    key = unique_key("order")
    parts = {1: random_bytes(MIN_PART), 2: random_bytes(10)}
    upload_id = upload_parts(s3, key, parts)
    backwards = {2: parts[2], 1: parts[1]}
    expect_error(
        "InvalidPartOrder", 400, complete, s3=s3, key=key, upload_id=upload_id, parts=backwards
    )


def test_a_retried_complete_gets_the_same_answer(s3: Any) -> None:
    key = unique_key("retry")
    parts = {1: random_bytes(MIN_PART), 2: random_bytes(99)}
    upload_id = upload_parts(s3, key, parts)
    first = complete(s3, key, upload_id, parts)
    again = complete(s3, key, upload_id, parts)
    fields = ("ETag", "Bucket", "Key", "Location")
    assert [again[f] for f in fields] == [first[f] for f in fields]
    assert object_bytes(s3, key) == b"".join(parts.values())


def test_abort_ends_the_upload(s3: Any) -> None:
    key = unique_key("abort")
    upload_id = upload_parts(s3, key, {1: random_bytes(1000)})
    arguments = {"Bucket": BUCKET, "Key": key, "UploadId": upload_id}
    answer = s3.abort_multipart_upload(**arguments)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    again = s3.abort_multipart_upload(**arguments)
    assert again["ResponseMetadata"]["HTTPStatusCode"] == 204
    expect_error("NoSuchUpload", 404, s3.upload_part, **arguments, PartNumber=2, Body=b"late")
    expect_error("NoSuchUpload", 404, s3.list_parts, **arguments)
    expect_error(
        "NoSuchUpload", 404, complete, s3=s3, key=key, upload_id=upload_id, parts={1: b"?"}
    )
    expect_error("NoSuchKey", 404, s3.get_object, Bucket=BUCKET, Key=key)


def test_a_content_type_wider_than_the_metadata_keeps_starts_no_upload(s3: Any) -> None:
    wide = "application/" + "x" * 300
    expect_error(
        "InvalidRequest",
        400,
        s3.create_multipart_upload,
        Bucket=BUCKET,
        Key="mp/wide-type",
        ContentType=wide,
    )
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix="mp/wide-type")
    assert uploads.get("Uploads", []) == []


def test_an_upload_id_is_one_keys(s3: Any) -> None:
    key = unique_key("owner")
    upload_id = upload_parts(s3, key, {})
    expect_error(
        "NoSuchUpload",
        404,
        s3.upload_part,
        Bucket=BUCKET,
        Key=key + "-other",
        UploadId=upload_id,
        PartNumber=1,
        Body=b"x",
    )


@pytest.mark.parametrize("number", [0, 10001])
def test_a_part_number_outside_1_to_10000_is_refused(s3: Any, number: int) -> None:
    key = unique_key("number")
    upload_id = upload_parts(s3, key, {})
    arguments = {"Bucket": BUCKET, "Key": key, "UploadId": upload_id, "Body": b"x"}
    expect_error("InvalidRequest", 400, s3.upload_part, **arguments, PartNumber=number)


# -- listings --------------------------------------------------------------------------------


def test_list_parts_pages_through_the_parts(s3: Any) -> None:
    key = unique_key("pages")
    parts = {n: random_bytes(100 + n) for n in (1, 2, 4, 5, 9)}
    upload_id = upload_parts(s3, key, parts)
    seen: list[dict[str, Any]] = []
    markers = []
    marker = 0
    while True:
        page = s3.list_parts(
            Bucket=BUCKET, Key=key, UploadId=upload_id, MaxParts=2, PartNumberMarker=marker
        )
        assert (page["MaxParts"], page["PartNumberMarker"]) == (2, marker)
        assert page["Initiator"]["ID"] == TEST_ROOT.access_key_id
        assert page["StorageClass"] == "STANDARD"
        seen += page["Parts"]
        if not page["IsTruncated"]:
            break
        marker = page["NextPartNumberMarker"]
        markers.append(marker)
    assert markers == [2, 5]
    assert [p["PartNumber"] for p in seen] == [1, 2, 4, 5, 9]
    assert [p["Size"] for p in seen] == [len(d) for d in parts.values()]
    assert [p["ETag"] for p in seen] == [f'"{md5_hex(d)}"' for d in parts.values()]
    assert all(p["LastModified"].tzinfo is not None for p in seen)


def test_list_uploads_by_prefix_delimiter_and_markers(s3: Any) -> None:
    root = unique_key("uploads") + "/"
    keys = [root + name for name in ("a/1", "a/2", "b", "c", "c")]
    ids = [upload_parts(s3, key, {}) for key in keys]
    whole = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=root)
    expected = sorted(zip(keys, ids, strict=True))
    assert [(u["Key"], u["UploadId"]) for u in whole["Uploads"]] == expected
    assert not whole["IsTruncated"]

    rolled = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=root, Delimiter="/")
    assert [p["Prefix"] for p in rolled["CommonPrefixes"]] == [root + "a/"]
    assert [u["Key"] for u in rolled["Uploads"]] == [root + "b", root + "c", root + "c"]

    pages = list_pages(s3, Prefix=root, MaxUploads=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [entry for page in pages for entry in page] == expected
    # A common prefix counts once toward a page, and a page that ends on one goes on past it.
    one_by_one = list_pages(s3, Prefix=root, Delimiter="/", MaxUploads=1)
    assert one_by_one == [[(root + "a/", "")], *([entry] for entry in expected[2:])]
    for key, upload_id in expected:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)
    assert "Uploads" not in s3.list_multipart_uploads(Bucket=BUCKET, Prefix=root)


def list_pages(s3: Any, **asked: Any) -> list[list[tuple[str, str]]]:
    """Every page of a ListMultipartUploads, following its markers: each page's uploads as
    (key, upload id) and common prefixes as (prefix, "")."""
    pages, markers = [], {"KeyMarker": "", "UploadIdMarker": ""}
    while True:
        page = s3.list_multipart_uploads(Bucket=BUCKET, **asked, **markers)
        entries = [(p["Prefix"], "") for p in page.get("CommonPrefixes", [])]
        entries += [(u["Key"], u["UploadId"]) for u in page.get("Uploads", [])]
        pages.append(entries)
        if not page["IsTruncated"]:
            return pages
        markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}


def test_list_uploads_encodes_keys_on_request(s3: Any) -> None:
    root = unique_key("encoded") + "/"
    key = root + "a b+c%d"
    upload_id = upload_parts(s3, key, {})
    page = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=root, EncodingType="url")
    # botocore decodes only the object listings it asked to encode: these come as sent.
    assert page["EncodingType"] == "url"
    assert [u["Key"] for u in page["Uploads"]] == [root + "a%20b%2Bc%25d"]
    plain = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=root)
    assert [u["Key"] for u in plain["Uploads"]] == [key]
    s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=upload_id)


# -- UploadPartCopy ---------------------------------------------------------------------------


def test_upload_part_copy_takes_ranges_of_an_object(s3: Any) -> None:
    source_key, key = unique_key("copy/source"), unique_key("copy/target")
    # A source of two parts, which the ranged copy crosses.
    source = random_bytes(MIN_PART + 4096)
    make_object(s3, source_key, source, part_bytes=MIN_PART)
    upload_id = upload_parts(s3, key, {})
    arguments = {"Bucket": BUCKET, "Key": key, "UploadId": upload_id}
    copy_source = f"{BUCKET}/{source_key}"
    ranged = s3.upload_part_copy(
        **arguments,
        PartNumber=1,
        CopySource=copy_source,
        CopySourceRange=f"bytes=1000-{1000 + MIN_PART - 1}",
    )
    first = source[1000 : 1000 + MIN_PART]
    assert ranged["CopyPartResult"]["ETag"] == f'"{md5_hex(first)}"'
    whole = s3.upload_part_copy(
        **arguments, PartNumber=2, CopySource={"Bucket": BUCKET, "Key": source_key}
    )
    assert whole["CopyPartResult"]["ETag"] == f'"{md5_hex(source)}"'
    result = complete(s3, key, upload_id, {1: first, 2: source})
    assert result["ETag"] == f'"{multipart_etag([first, source])}"'
    assert object_bytes(s3, key) == first + source


@pytest.mark.parametrize(
    ("copy_range", "code", "status"),
    [
        ("bytes=5-", "InvalidRequest", 400),
        ("bytes=-5", "InvalidRequest", 400),
        ("bytes=9-3", "InvalidRequest", 400),
        ("bytes=0-1000", "InvalidRange", 416),
    ],
)
def test_a_copy_range_must_name_bytes_of_the_source(
    s3: Any, copy_range: str, code: str, status: int
) -> None:
    source_key, key = unique_key("range/source"), unique_key("range/target")
    make_object(s3, source_key, random_bytes(1000))
    upload_id = upload_parts(s3, key, {})
    expect_error(
        code,
        status,
        s3.upload_part_copy,
        Bucket=BUCKET,
        Key=key,
        UploadId=upload_id,
        PartNumber=1,
        CopySource=f"{BUCKET}/{source_key}",
        CopySourceRange=copy_range,
    )


def test_a_part_copy_judges_its_source_conditions(s3: Any) -> None:
    source_key, key = unique_key("cond/source"), unique_key("cond/target")
    make_object(s3, source_key, b"source bytes")
    etag = s3.head_object(Bucket=BUCKET, Key=source_key)["ETag"]
    upload_id = upload_parts(s3, key, {})
    arguments = {
        "Bucket": BUCKET,
        "Key": key,
        "UploadId": upload_id,
        "PartNumber": 1,
        "CopySource": f"{BUCKET}/{source_key}",
    }
    stale = f'"{md5_hex(b"other")}"'
    expect_error(
        "PreconditionFailed", 412, s3.upload_part_copy, **arguments, CopySourceIfMatch=stale
    )
    expect_error(
        "PreconditionFailed", 412, s3.upload_part_copy, **arguments, CopySourceIfNoneMatch=etag
    )
    assert s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id).get("Parts", []) == []
    copied = s3.upload_part_copy(**arguments, CopySourceIfMatch=etag, CopySourceIfNoneMatch=stale)
    assert copied["CopyPartResult"]["ETag"] == f'"{md5_hex(b"source bytes")}"'


def test_a_copy_from_no_object_is_no_such_key(s3: Any) -> None:
    key = unique_key("nosource")
    upload_id = upload_parts(s3, key, {})
    expect_error(
        "NoSuchKey",
        404,
        s3.upload_part_copy,
        Bucket=BUCKET,
        Key=key,
        UploadId=upload_id,
        PartNumber=1,
        CopySource=f"{BUCKET}/{unique_key('missing')}",
    )


# -- checksums -------------------------------------------------------------------------------


def test_a_composite_crc32_upload(s3: Any) -> None:
    key = unique_key("composite")
    parts = {1: random_bytes(MIN_PART), 2: random_bytes(777)}
    created = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="CRC32")
    assert (created["ChecksumAlgorithm"], created["ChecksumType"]) == ("CRC32", "COMPOSITE")
    upload_id = created["UploadId"]
    listed = []
    for number, data in parts.items():
        answer = s3.upload_part(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="CRC32",
        )
        assert answer["ChecksumCRC32"] == crc32_b64(data)
        listed.append(
            {"PartNumber": number, "ETag": answer["ETag"], "ChecksumCRC32": answer["ChecksumCRC32"]}
        )
    page = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)
    assert [p["ChecksumCRC32"] for p in page["Parts"]] == [crc32_b64(d) for d in parts.values()]
    composite = composite_crc32(parts.values())
    # The whole object's checksum may be named with or without its -N.
    result = s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": listed},
        ChecksumCRC32=composite.rpartition("-")[0],
    )
    assert result["ChecksumCRC32"] == composite
    assert result["ChecksumType"] == "COMPOSITE"


def test_part_checksums_complete_an_upload_created_without_an_algorithm(s3: Any) -> None:
    key = unique_key("noalgo")
    parts = {1: random_bytes(MIN_PART), 2: random_bytes(10)}
    upload_id = upload_parts(s3, key, parts)
    listed = [
        {"PartNumber": n, "ETag": f'"{md5_hex(d)}"', "ChecksumCRC32": crc32_b64(d)}
        for n, d in parts.items()
    ]
    result = s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload={"Parts": listed}
    )
    assert result["ETag"] == f'"{multipart_etag(parts.values())}"'
    assert "ChecksumCRC32" not in result and "ChecksumType" not in result


def test_boto3_sends_parts_as_its_scheme_wants(s3: Any, cluster: LocalCluster) -> None:
    """Over https boto3 streams a part as aws-chunked with an unsigned CRC32 trailer; over
    http it signs the sha256 and sends the CRC32 as a header (S3.md §4): both reach the
    part intact, with the CRC32 checked and kept."""
    sent: list[str] = []

    def record(request: Any, **_: Any) -> None:
        sent.append(request.headers["x-amz-content-sha256"].decode())

    s3.meta.events.register("before-send.s3.UploadPart", record)
    try:
        key = unique_key("modes")
        data = random_bytes(300_000)
        upload_id = upload_parts(s3, key, {1: data})
    finally:
        s3.meta.events.unregister("before-send.s3.UploadPart", record)
    expected = (
        "STREAMING-UNSIGNED-PAYLOAD-TRAILER" if cluster.tls else hashlib.sha256(data).hexdigest()
    )
    assert sent == [expected]
    [part] = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)["Parts"]
    assert (part["Size"], part["ETag"]) == (len(data), f'"{md5_hex(data)}"')
    assert part["ChecksumCRC32"] == crc32_b64(data)
    complete(s3, key, upload_id, {1: data})
    assert object_bytes(s3, key) == data


def test_a_full_object_crc64nvme_upload(s3: Any) -> None:
    key = unique_key("full")
    parts = {1: random_bytes(MIN_PART), 2: random_bytes(MIN_PART), 3: random_bytes(3)}
    whole = crc64nvme_b64(b"".join(parts.values()))
    created = s3.create_multipart_upload(
        Bucket=BUCKET, Key=key, ChecksumAlgorithm="CRC64NVME", ChecksumType="FULL_OBJECT"
    )
    assert created["ChecksumType"] == "FULL_OBJECT"
    upload_id = created["UploadId"]
    listed = []
    for number, data in parts.items():
        answer = s3.upload_part(
            Bucket=BUCKET,
            Key=key,
            UploadId=upload_id,
            PartNumber=number,
            Body=data,
            ChecksumAlgorithm="CRC64NVME",
        )
        assert answer["ChecksumCRC64NVME"] == crc64nvme_b64(data)
        listed.append({"PartNumber": number, "ETag": answer["ETag"]})
    arguments = {"Bucket": BUCKET, "Key": key, "UploadId": upload_id}
    upload = {"Parts": listed}
    wrong = crc64nvme_b64(b"not the object")
    call = s3.complete_multipart_upload
    expect_error(
        "BadDigest", 400, call, **arguments, MultipartUpload=upload, ChecksumCRC64NVME=wrong
    )
    result = call(
        **arguments, MultipartUpload=upload, ChecksumCRC64NVME=whole, ChecksumType="FULL_OBJECT"
    )
    assert (result["ChecksumCRC64NVME"], result["ChecksumType"]) == (whole, "FULL_OBJECT")


def test_a_part_with_a_wrong_checksum_is_bad_digest_and_not_stored(s3: Any) -> None:
    key = unique_key("baddigest")
    upload_id = upload_parts(s3, key, {})
    arguments = {"Bucket": BUCKET, "Key": key, "UploadId": upload_id, "PartNumber": 1}
    data = random_bytes(3000)
    expect_error(
        "BadDigest", 400, s3.upload_part, **arguments, Body=data, ChecksumCRC32=crc32_b64(b"x")
    )
    assert s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id).get("Parts", []) == []
    wrong_md5 = hashlib.md5(b"x", usedforsecurity=False).digest()
    expect_error(
        "BadDigest", 400, s3.upload_part, **arguments, Body=data, ContentMD5=_b64(wrong_md5)
    )
    assert s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id).get("Parts", []) == []


def test_a_part_checksum_of_another_algorithm_than_the_uploads_is_refused(
    s3: Any, cluster: LocalCluster
) -> None:
    key = unique_key("otheralgo")
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key=key, ChecksumAlgorithm="CRC32")[
        "UploadId"
    ]
    arguments = {"Bucket": BUCKET, "Key": key, "UploadId": upload_id, "PartNumber": 1}
    expect_error(
        "InvalidRequest", 400, s3.upload_part, **arguments, Body=b"x", ChecksumAlgorithm="SHA256"
    )
    assert s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id).get("Parts", []) == []
    # A part sent without any checksum gets the upload's, computed as it is stored.
    bare = s3_client(cluster, request_checksum_calculation="when_required")
    sent: list[str] = []
    bare.meta.events.register(
        "before-send.s3.UploadPart",
        lambda request, **_: sent.extend(h for h in request.headers if "checksum" in h.lower()),
    )
    bare.upload_part(**arguments, Body=b"x")
    assert sent == []
    [part] = s3.list_parts(Bucket=BUCKET, Key=key, UploadId=upload_id)["Parts"]
    assert part["ChecksumCRC32"] == crc32_b64(b"x")
    result = complete(s3, key, upload_id, {1: b"x"})
    assert result["ChecksumCRC32"] == composite_crc32([b"x"])


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


# -- conditional Completes -------------------------------------------------------------------


def test_of_two_racing_create_only_completes_one_wins(s3: Any) -> None:
    key = unique_key("race")
    bodies = [random_bytes(2000), random_bytes(2000)]
    uploads = [upload_parts(s3, key, {1: body}) for body in bodies]
    outcomes: list[Any] = [None, None]
    start = threading.Barrier(2)

    def finish(index: int) -> None:
        start.wait()
        try:
            outcomes[index] = complete(
                s3, key, uploads[index], {1: bodies[index]}, IfNoneMatch="*"
            )["ETag"]
        except ClientError as error:
            outcomes[index] = (error_code_of(error), status_of(error))

    threads = [threading.Thread(target=finish, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, str)]
    assert len(winners) == 1, outcomes
    assert outcomes[1 - winners[0]] == ("PreconditionFailed", 412)
    assert object_bytes(s3, key) == bodies[winners[0]]


def test_if_match_completes_only_over_that_version(s3: Any) -> None:
    key = unique_key("ifmatch")
    make_object(s3, key, b"first")
    current = s3.head_object(Bucket=BUCKET, Key=key)["ETag"]
    stale = f'"{multipart_etag([b"other"])}"'
    upload_id = upload_parts(s3, key, {1: b"second"})
    expect_error(
        "PreconditionFailed",
        412,
        complete,
        s3=s3,
        key=key,
        upload_id=upload_id,
        parts={1: b"second"},
        IfMatch=stale,
    )
    complete(s3, key, upload_id, {1: b"second"}, IfMatch=current)
    assert object_bytes(s3, key) == b"second"
    taken = upload_parts(s3, key, {1: b"third"})
    expect_error(
        "PreconditionFailed",
        412,
        complete,
        s3=s3,
        key=key,
        upload_id=taken,
        parts={1: b"third"},
        IfNoneMatch="*",
    )
