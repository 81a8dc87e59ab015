"""S3's bucket naming rules, one pure check."""

from __future__ import annotations

import pytest

from diststorage.core.errors import InvalidBucketName
from diststorage.meta import check_bucket_name

GOOD = [
    "abc",
    "default",
    "photos-2026",
    "my.bucket.name",
    "a" * 63,
    "0start",
    "end9",
    "1.2.3",  # three numbers are not an address
    "192.168.1.1a",
]
BAD = [
    "",
    "ab",
    "a" * 64,
    "Photos",
    "under_score",
    "spa ce",
    "-leading",
    "trailing-",
    ".leading",
    "trailing.",
    "two..dots",
    "192.168.1.1",
    "10.0.0.255",
    "xn--punycode",
    "sthree-reserved",
    "amzn-s3-demo-bucket",
    "bucket-s3alias",
    "bucket--ol-s3",
    "bucket.mrap",
    "bucket--x-s3",
    "bucket--table-s3",
    "ünicode",
]


@pytest.mark.parametrize("name", GOOD)
def test_names_s3_allows(name: str) -> None:
    assert check_bucket_name(name) == name


@pytest.mark.parametrize("name", BAD)
def test_names_s3_refuses(name: str) -> None:
    with pytest.raises(InvalidBucketName) as raised:
        check_bucket_name(name)
    assert raised.value.message
    assert raised.value.s3_code == "InvalidBucketName"
