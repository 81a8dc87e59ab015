"""What the multipart tests share: requests signed by hand (for bodies no SDK sends, and to
read objects back through the native API), over http or https alike, and the ETags and
checksums a client computes on its own side to compare with the server's."""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from http.client import HTTPConnection, HTTPSConnection
from pathlib import Path
from typing import Any

from awscrt import checksums as crt
from conftest import REGION, TEST_ROOT, UNSIGNED_PAYLOAD

from diststorage.core.ids import new_id
from diststorage.local import LocalCluster
from diststorage.s3auth.signer import sign_request

BUCKET = "default"
MIB = 1 << 20
MIN_PART = 5 * MIB
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def xml(self) -> ET.Element:
        return ET.fromstring(self.body)

    def code(self) -> str | None:
        """The S3 error's <Code> (errors carry no namespace, as on AWS)."""
        return self.xml().findtext("Code")


def signed_request(
    cluster: LocalCluster,
    method: str,
    url: str,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    payload: str | None = None,
) -> Answer:
    """``method`` on ``url`` (encoded), signed by the root key over the body's sha256 (or
    ``payload``), sent as is."""
    given = dict(headers or {})
    sha256 = payload or hashlib.sha256(body).hexdigest()
    given.update(
        sign_request(
            method, url, given, sha256, TEST_ROOT.access_key_id, TEST_ROOT.secret_access_key
        )
    )
    return send(cluster, method, url, body, given)


def send(
    cluster: LocalCluster, method: str, url: str, body: bytes, headers: Mapping[str, str]
) -> Answer:
    request = urllib.request.Request(url, data=body or None, method=method, headers=dict(headers))
    context = None if cluster.tls is None else cluster.tls.client_context()
    try:
        with urllib.request.urlopen(request, timeout=60, context=context) as response:
            return Answer(response.status, dict(response.headers), response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, dict(error.headers), error.read())


def s3_request(
    cluster: LocalCluster,
    method: str,
    key: str,
    query: str = "",
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
) -> Answer:
    url = f"{cluster.s3_url}/{BUCKET}/{urllib.parse.quote(key)}" + (f"?{query}" if query else "")
    return signed_request(cluster, method, url, body, headers)


def object_bytes(s3: Any, key: str) -> bytes:
    """The object at ``key`` of the default bucket, read whole by GetObject."""
    data: bytes = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    return data


def file_md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as f:
        while piece := f.read(MIB):
            digest.update(piece)
    return digest.hexdigest()


def unique_key(stem: str) -> str:
    return f"{stem}-{new_id()[:12]}"


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def multipart_etag(parts: Iterable[bytes]) -> str:
    """``md5(md5₁‖…‖md5ₙ)-N``, as a client computes it from the parts it sent."""
    digests = [hashlib.md5(part, usedforsecurity=False).digest() for part in parts]
    return f"{hashlib.md5(b''.join(digests), usedforsecurity=False).hexdigest()}-{len(digests)}"


def crc32_b64(data: bytes) -> str:
    return base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()


def composite_crc32(parts: Iterable[bytes]) -> str:
    """COMPOSITE CRC32: the CRC32 of the parts' binary CRC32s, base64, ``-N``."""
    raw = [zlib.crc32(part).to_bytes(4, "big") for part in parts]
    return f"{crc32_b64(b''.join(raw))}-{len(raw)}"


def crc64nvme_b64(data: bytes) -> str:
    return base64.b64encode(crt.crc64nvme(data).to_bytes(8, "big")).decode()


def complete_body(parts: Iterable[tuple[int, str]], namespace: bool = True) -> bytes:
    xmlns = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"' if namespace else ""
    listed = "".join(
        f"<Part><PartNumber>{number}</PartNumber><ETag>{etag}</ETag></Part>"
        for number, etag in parts
    )
    return f"<CompleteMultipartUpload{xmlns}>{listed}</CompleteMultipartUpload>".encode()


def upload_parts(s3: Any, key: str, parts: Mapping[int, bytes], **create: Any) -> str:
    """A new upload of ``key`` with ``parts`` uploaded; its id."""
    upload_id: str = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **create)["UploadId"]
    for number, data in parts.items():
        s3.upload_part(Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=data)
    return upload_id


def listing(parts: Mapping[int, bytes]) -> dict[str, Any]:
    """The MultipartUpload argument of a Complete that lists ``parts`` as uploaded."""
    return {"Parts": [{"PartNumber": n, "ETag": f'"{md5_hex(d)}"'} for n, d in parts.items()]}


def make_object(s3: Any, key: str, data: bytes, part_bytes: int | None = None) -> None:
    """An object at ``key``, written by a multipart upload: in one part (any size may be the
    last part), or cut into parts of ``part_bytes``."""
    size = part_bytes or max(len(data), 1)
    parts = {n + 1: data[at : at + size] for n, at in enumerate(range(0, len(data) or 1, size))}
    upload_id = upload_parts(s3, key, parts)
    s3.complete_multipart_upload(
        Bucket=BUCKET, Key=key, UploadId=upload_id, MultipartUpload=listing(parts)
    )


# -- aws-chunked bodies signed with the test root key --------------------------------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


@dataclass(frozen=True)
class Seed:
    """What chunk signatures chain on: the request's signature, date and scope."""

    signature: str
    amz_date: str
    key: bytes

    @property
    def scope(self) -> str:
        return f"{self.amz_date[:8]}/{REGION}/s3/aws4_request"

    def sign(self, kind: str, previous: str, digest: str) -> str:
        lines = [kind, self.amz_date, self.scope, previous]
        if kind.endswith("PAYLOAD"):
            lines.append(EMPTY_SHA256)
        to_sign = "\n".join([*lines, digest])
        return hmac.new(self.key, to_sign.encode(), hashlib.sha256).hexdigest()


def seed_of(signed_headers: Mapping[str, str]) -> Seed:
    signature = signed_headers["Authorization"].rpartition("Signature=")[2]
    amz_date = signed_headers["X-Amz-Date"]
    key = _hmac(("AWS4" + TEST_ROOT.secret_access_key).encode(), amz_date[:8])
    for part in (REGION, "s3", "aws4_request"):
        key = _hmac(key, part)
    return Seed(signature, amz_date, key)


def signed_chunks(seed: Seed, pieces: list[bytes], trailer: tuple[str, str] | None) -> bytes:
    """``hex;chunk-signature=sig CRLF data CRLF`` per piece, the signed 0-chunk, then the
    signed trailer (when given) and the final CRLF."""
    body, previous = b"", seed.signature
    for piece in [*pieces, b""]:
        previous = seed.sign(
            "AWS4-HMAC-SHA256-PAYLOAD", previous, hashlib.sha256(piece).hexdigest()
        )
        body += b"%x;chunk-signature=%s\r\n%s" % (len(piece), previous.encode(), piece)
        body += b"\r\n" if piece else b""
    if trailer is not None:
        line = f"{trailer[0]}:{trailer[1]}"
        signature = seed.sign(
            "AWS4-HMAC-SHA256-TRAILER", previous, hashlib.sha256(f"{line}\n".encode()).hexdigest()
        )
        body += f"{line}\r\nx-amz-trailer-signature:{signature}\r\n".encode()
    return body + b"\r\n"


def signed_streaming_part(
    cluster: LocalCluster,
    key: str,
    upload_id: str,
    part_number: int,
    pieces: list[bytes],
    trailer: tuple[str, str] | None = None,
    tamper: bool = False,
) -> Answer:
    """UploadPart with a body signed chunk by chunk (and its trailer, if any); ``tamper``
    flips a byte of the first chunk after signing."""
    url = (
        f"{cluster.s3_url}/{BUCKET}/{urllib.parse.quote(key)}"
        f"?partNumber={part_number}&uploadId={upload_id}"
    )
    headers = {
        "Content-Encoding": "aws-chunked",
        "x-amz-decoded-content-length": str(sum(len(p) for p in pieces)),
    }
    if trailer is not None:
        headers["x-amz-trailer"] = trailer[0]
    mode = STREAMING_SIGNED if trailer is None else STREAMING_SIGNED_TRAILER
    headers.update(
        sign_request(
            "PUT", url, headers, mode, TEST_ROOT.access_key_id, TEST_ROOT.secret_access_key
        )
    )
    body = signed_chunks(seed_of(headers), pieces, trailer)
    if tamper:
        at = body.index(b"\r\n") + 2
        body = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]
    return send(cluster, "PUT", url, body, headers)


@contextmanager
def part_in_flight(
    cluster: LocalCluster, key: str, upload_id: str, size: int
) -> Iterator[HTTPConnection]:
    """An UploadPart of ``size`` bytes whose head is sent: the test sends the body as it
    pleases (signed as an unsigned payload), then reads the response."""
    url = f"{cluster.s3_url}/{BUCKET}/{urllib.parse.quote(key)}?partNumber=1&uploadId={upload_id}"
    parts = urllib.parse.urlsplit(url)
    headers = {"Content-Length": str(size)}
    headers.update(
        sign_request(
            "PUT",
            url,
            headers,
            UNSIGNED_PAYLOAD,
            TEST_ROOT.access_key_id,
            TEST_ROOT.secret_access_key,
        )
    )
    host, port = parts.hostname or "", parts.port
    connection = (
        HTTPConnection(host, port, timeout=60)
        if cluster.tls is None
        else HTTPSConnection(host, port, timeout=60, context=cluster.tls.client_context())
    )
    try:
        connection.putrequest("PUT", f"{parts.path}?{parts.query}", skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.endheaders()
        yield connection
    finally:
        connection.close()
