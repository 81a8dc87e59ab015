"""S3's rules for bucket names (general purpose buckets), as one pure check.

A name is 3–63 characters of lowercase letters, digits, dots and hyphens; it starts and ends
with a letter or digit, has no two dots in a row, does not look like an IPv4 address, and has
none of the prefixes and suffixes AWS reserves. Names go into virtual-host style URLs
(``bucket.s3.example``), hence DNS's alphabet.
"""

from __future__ import annotations

import re

from diststorage.core.errors import InvalidBucketName

MIN_BUCKET_NAME = 3
MAX_BUCKET_NAME = 63
_ALPHABET = re.compile(r"^[a-z0-9.-]+$")
_IPV4_LIKE = re.compile(r"^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$")
RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def check_bucket_name(name: str) -> str:
    """Returns ``name`` when S3 allows it for a bucket; raises InvalidBucketName saying which
    rule it breaks otherwise."""
    if not MIN_BUCKET_NAME <= len(name) <= MAX_BUCKET_NAME:
        raise InvalidBucketName(
            f"a bucket name is {MIN_BUCKET_NAME} to {MAX_BUCKET_NAME} characters long"
        )
    if not _ALPHABET.match(name):
        raise InvalidBucketName(
            "a bucket name holds only lowercase letters, digits, dots and hyphens"
        )
    if not (name[0].isalnum() and name[-1].isalnum()):
        raise InvalidBucketName("a bucket name starts and ends with a letter or a digit")
    if ".." in name:
        raise InvalidBucketName("a bucket name has no two dots in a row")
    if _IPV4_LIKE.match(name):
        raise InvalidBucketName("a bucket name must not look like an IP address")
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            raise InvalidBucketName(f"bucket names starting {prefix!r} are reserved")
    for suffix in RESERVED_SUFFIXES:
        if name.endswith(suffix):
            raise InvalidBucketName(f"bucket names ending {suffix!r} are reserved")
    return name
