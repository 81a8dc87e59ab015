"""What a request's headers promise about its body, read once before the body is.

Strict where S3 is: one ``x-amz-checksum-*`` header at most, never together with a trailer,
and an ``x-amz-sdk-checksum-algorithm`` that names the checksum actually sent.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from diststorage.core.errors import InvalidDigest, InvalidRequest
from diststorage.s3auth import (
    ChecksumAlgorithm,
    PayloadMode,
    Verified,
    algorithm_from_header,
    declared_trailer,
    decode_b64_checksum,
    parse_algorithm,
)

MD5_BYTES = 16
_LENGTH = re.compile(r"[0-9]{1,19}")


@dataclass(frozen=True, slots=True)
class BodyChecks:
    """The checks a body must pass at its end, and the checksums to compute for the caller.

    ``sha256_hex``: the signed hex sha256 (SIGNED_HEX); ``md5``: Content-MD5's digest;
    ``checksum``: an ``x-amz-checksum-*`` header's algorithm and digest; ``trailer``: the
    algorithm of the checksum an aws-chunked trailer will carry (its decoder checks it);
    ``decoded_length``: ``x-amz-decoded-content-length``; ``compute``: what ``checksum(algo)``
    of the verifying body answers (the header's algorithm, plus what the caller asked for).
    """

    payload: PayloadMode
    sha256_hex: str | None
    md5: bytes | None
    checksum: tuple[ChecksumAlgorithm, bytes] | None
    trailer: ChecksumAlgorithm | None
    decoded_length: int | None
    compute: frozenset[ChecksumAlgorithm]


def lowered(headers: Mapping[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def body_checks_from_headers(
    verified: Verified,
    headers: Mapping[str, str],
    extra_checksums: Collection[ChecksumAlgorithm] = (),
) -> BodyChecks:
    """Raises InvalidRequest for contradicting checksum headers, InvalidDigest for a
    Content-MD5 or checksum value that is no digest."""
    named = lowered(headers)
    checksum = _header_checksum(named)
    trailer = declared_trailer(verified.payload, named.get("x-amz-trailer"))
    if checksum is not None and trailer is not None:
        raise InvalidRequest("x-amz-trailer and an x-amz-checksum-* header exclude each other")
    _check_sdk_algorithm(named, checksum[0] if checksum else trailer)
    compute = set(extra_checksums)
    if checksum is not None:
        compute.add(checksum[0])
    return BodyChecks(
        payload=verified.payload,
        sha256_hex=verified.content_sha256 if verified.payload is PayloadMode.SIGNED_HEX else None,
        md5=_content_md5(named.get("content-md5")),
        checksum=checksum,
        trailer=trailer,
        decoded_length=_decoded_length(named) if verified.payload.is_chunked else None,
        compute=frozenset(compute),
    )


def decoded_size(headers: Mapping[str, str], content_length: int | None) -> int | None:
    """The object's size as the request announces it. With aws-chunked framing (which follows
    ``x-amz-content-sha256``, never Content-Encoding), Content-Length counts the framing, and
    the size is ``x-amz-decoded-content-length`` or unknown."""
    named = lowered(headers)
    if named.get("x-amz-content-sha256", "").startswith("STREAMING-"):
        return _decoded_length(named)
    return content_length


def _header_checksum(named: Mapping[str, str]) -> tuple[ChecksumAlgorithm, bytes] | None:
    found = [(algo, named[name]) for name in named if (algo := algorithm_from_header(name))]
    if not found:
        return None
    if len(found) > 1:
        raise InvalidRequest(
            "Expecting a single x-amz-checksum- header. Multiple checksum Types are not allowed."
        )
    algo, value = found[0]
    return algo, decode_b64_checksum(algo, value)


def _check_sdk_algorithm(named: Mapping[str, str], sent: ChecksumAlgorithm | None) -> None:
    value = named.get("x-amz-sdk-checksum-algorithm")
    if value is None:
        return
    announced = parse_algorithm(value)
    if sent is None:
        raise InvalidRequest(
            "x-amz-sdk-checksum-algorithm specified, but no corresponding x-amz-checksum-* or"
            " x-amz-trailer headers were found."
        )
    if sent is not announced:
        raise InvalidRequest(
            f"x-amz-sdk-checksum-algorithm says {announced}, the checksum sent is {sent}"
        )


def _content_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidDigest("The Content-MD5 you specified is not valid.") from None
    if len(digest) != MD5_BYTES:
        raise InvalidDigest("The Content-MD5 you specified is not valid.")
    return digest


def _decoded_length(named: Mapping[str, str]) -> int | None:
    value = named.get("x-amz-decoded-content-length")
    if value is None:
        return None
    if not _LENGTH.fullmatch(value.strip()):
        raise InvalidRequest(f"x-amz-decoded-content-length {value[:30]!r} is not a length")
    return int(value)
