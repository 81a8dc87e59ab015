"""Which bucket and key an S3 request names: virtual-host style (``BUCKET.<s3-domain>``) when
the Host says so, path style (``/BUCKET/KEY``) otherwise.

The key is the raw path's percent-decoding, exactly once and nothing more: no ``+`` for space,
no dot-segment removal, no slash folding (``//x`` and ``a/../b`` are keys like any other).
A key is data, never a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from diststorage.core.errors import InvalidKey, InvalidRequest, KeyTooLong
from diststorage.gateway.s3.xml import XML_ILLEGAL

MAX_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Target:
    """``bucket`` "" for the service (ListBuckets); ``key`` "" for a bucket request."""

    bucket: str
    key: str


def target_of(host: str | None, raw_path: str, domain: str | None) -> Target:
    path = raw_path.partition("?")[0]
    if not path.startswith("/"):
        raise InvalidRequest("the request target must be an absolute path")
    bucket = _virtual_host_bucket(host, domain)
    if bucket is not None:
        return Target(bucket, _decoded(path[1:]))
    bucket_part, _, key_part = path[1:].partition("/")
    return Target(_decoded(bucket_part), _decoded(key_part))


def check_key(key: str) -> str:
    """A key an object may be stored under: 1 to 1024 bytes of UTF-8 that XML can carry."""
    if not key:
        raise InvalidKey("an object key may not be empty")
    try:
        size = len(key.encode())
    except UnicodeEncodeError:  # a raw byte of the request that is not UTF-8 (surrogateescape)
        raise InvalidKey("an object key must be UTF-8") from None
    if size > MAX_KEY_BYTES:
        raise KeyTooLong(f"an object key is at most {MAX_KEY_BYTES} bytes of UTF-8")
    # Such keys could never be listed without encoding-type=url (S3.md pitfall 12).
    if XML_ILLEGAL.search(key):
        raise InvalidKey("an object key may not hold characters XML 1.0 cannot carry")
    return key


def _virtual_host_bucket(host: str | None, domain: str | None) -> str | None:
    if not host or not domain:
        return None
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    name = name.lower().rstrip(".")
    suffix = "." + domain.lower().strip(".")
    if name.endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def _decoded(part: str) -> str:
    try:
        return unquote(part, errors="strict")
    except UnicodeDecodeError:
        raise InvalidRequest("the request path is not percent-encoded UTF-8") from None
