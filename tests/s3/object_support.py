"""Helpers of the S3 object tests: both transports (botocore signs the sha256 and sends a
checksum header over http, and streams an unsigned aws-chunked body with a checksum trailer
over https), raw requests over either, independent checksums, and the operator's admin API
over TLS.

Every module runs against the bucket ``default``, which every cluster has, with the root key
(an admin key); keys with narrower grants are made through the admin API.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import socket
import ssl
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from awscrt import checksums as crt
from conftest import READ_TIMEOUT_S, TEST_ROOT, chunk_files, gateway_client

from diststorage.client import Client, Credentials
from diststorage.local import LocalCluster

BUCKET = "default"
MIB = 1 << 20
ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
# Big enough that the object lands on nodes as chunks (not inline, not replicated small).
CHUNKED_BYTES = 3 * MIB + 17


def checksum_b64(algorithm: str, data: bytes) -> str:
    """The checksum as S3 spells it, by zlib, hashlib and awscrt (the server's CRCs come from
    awscrt too, but through its own streaming code; zlib checks CRC32 independently)."""
    match algorithm:
        case "CRC32":
            digest = zlib.crc32(data).to_bytes(4, "big")
        case "CRC32C":
            digest = crt.crc32c(data).to_bytes(4, "big")
        case "CRC64NVME":
            digest = crt.crc64nvme(data).to_bytes(8, "big")
        case "SHA1":
            digest = hashlib.sha1(data).digest()
        case _:
            digest = hashlib.sha256(data).digest()
    return base64.b64encode(digest).decode()


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def quoted_md5(data: bytes) -> str:
    return '"' + hashlib.md5(data, usedforsecurity=False).hexdigest() + '"'


@contextmanager
def stores_nothing(cluster: LocalCluster, s3: Any, key: str) -> Iterator[None]:
    """Asserts that what runs inside leaves no object under ``key`` and no new chunk file."""
    before = chunk_files(cluster)
    yield
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as caught:
        s3.get_object(Bucket=BUCKET, Key=key)
    assert caught.value.response["Error"]["Code"] == "NoSuchKey"
    assert chunk_files(cluster) - before == set()


def admin_client(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Client:
    """The root key's native client; over TLS it trusts the test CA (the client verifies
    with the default context, which reads SSL_CERT_FILE)."""
    if cluster.tls is not None:
        monkeypatch.setenv("SSL_CERT_FILE", str(cluster.tls.ca))
    return gateway_client(cluster.url, TEST_ROOT)


def new_key(cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch, name: str) -> Credentials:
    made = admin_client(cluster, monkeypatch).accounts.create_key(name, can_create_buckets=False)
    return Credentials(made["access_key_id"], made["secret_access_key"])


# -- raw requests ----------------------------------------------------------------------------


def s3_port(cluster: LocalCluster) -> int:
    return int(cluster.s3_url.rsplit(":", 1)[1])


def raw_s3_exchange(cluster: LocalCluster, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Sends raw bytes to the S3 listener (over TLS when the cluster serves it); answers the
    response's status, headers (lowercased names) and body."""
    with socket.create_connection(("127.0.0.1", s3_port(cluster)), timeout=READ_TIMEOUT_S) as raw:
        sock: socket.socket = raw
        if cluster.tls is not None:
            sock = cluster.tls.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
        # A server may answer before the whole body is sent (a refusal up front) and close.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request)
        received = bytearray()
        with contextlib.suppress(ConnectionResetError):
            while not _complete(bytes(received)) and (piece := sock.recv(65536)):
                received += piece
        if isinstance(sock, ssl.SSLSocket):
            sock.close()
    head, _, body = bytes(received).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split(" ", 2)[1]), headers, body


def _complete(raw: bytes) -> bool:
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        return False
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return True


# -- signed aws-chunked bodies, by hashlib and hmac only -------------------------------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def _hex_hmac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def streaming_request(
    cluster: LocalCluster,
    key_path: str,
    pieces: list[bytes],
    trailer: tuple[str, str],
    corrupt: bool = False,
    credentials: Credentials = TEST_ROOT,
) -> bytes:
    """A whole PUT with a ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`` body, written from
    AWS's description: the seed signature over the headers, chained chunk signatures, and the
    trailer's signature. ``corrupt`` flips one byte of the first chunk after signing."""
    now = datetime.now(UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/us-east-1/s3/aws4_request"
    key = _hmac(("AWS4" + credentials.secret_access_key).encode(), amz_date[:8])
    for part in ("us-east-1", "s3", "aws4_request"):
        key = _hmac(key, part)
    decoded = sum(len(p) for p in pieces)
    host = f"127.0.0.1:{s3_port(cluster)}"
    headers = {
        "content-encoding": "aws-chunked",
        "host": host,
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER",
        "x-amz-date": amz_date,
        "x-amz-decoded-content-length": str(decoded),
        "x-amz-trailer": trailer[0],
    }
    signed = ";".join(sorted(headers))
    canonical = "\n".join(
        [
            "PUT",
            key_path,
            "",
            "".join(f"{name}:{headers[name]}\n" for name in sorted(headers)),
            signed,
            headers["x-amz-content-sha256"],
        ]
    )
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    seed = _hex_hmac(key, f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{digest}")
    body = _signed_chunks(key, amz_date, scope, seed, pieces, trailer)
    if corrupt:
        at = body.index(b"\r\n") + 2
        body = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]
    authorization = (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key_id}/{scope},"
        f" SignedHeaders={signed}, Signature={seed}"
    )
    head = [f"PUT {key_path} HTTP/1.1", *(f"{n}: {v}" for n, v in headers.items())]
    head += [f"authorization: {authorization}", f"content-length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _signed_chunks(
    key: bytes, amz_date: str, scope: str, seed: str, pieces: list[bytes], trailer: tuple[str, str]
) -> bytes:
    body = b""
    previous = seed
    for piece in [*pieces, b""]:
        to_sign = "\n".join(
            [
                "AWS4-HMAC-SHA256-PAYLOAD",
                amz_date,
                scope,
                previous,
                EMPTY_SHA256,
                hashlib.sha256(piece).hexdigest(),
            ]
        )
        previous = _hex_hmac(key, to_sign)
        body += b"%x;chunk-signature=%s\r\n" % (len(piece), previous.encode())
        if piece:
            body += piece + b"\r\n"
    line = f"{trailer[0]}:{trailer[1]}\n"
    trailer_digest = hashlib.sha256(line.encode()).hexdigest()
    to_sign = f"AWS4-HMAC-SHA256-TRAILER\n{amz_date}\n{scope}\n{previous}\n{trailer_digest}"
    signature = _hex_hmac(key, to_sign)
    body += f"{trailer[0]}:{trailer[1]}\r\nx-amz-trailer-signature:{signature}\r\n\r\n".encode()
    return body
