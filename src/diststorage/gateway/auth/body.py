"""Request bodies that verify themselves, as the pipelines' ``ByteSource``.

``wrap_body`` puts the right adapters over the raw body (``http/body.py`` ``RequestBody``) for
the request's payload mode: ``ChunkedBody`` decodes aws-chunked framing and checks its chunk
signatures and trailer, ``VerifyingBody`` checks the signed sha256, Content-MD5 and an
``x-amz-checksum-*`` header. Each raises at the body's end at the latest, and returns its last
bytes (or b"") only once every check passed.

That is what makes streaming safe: both writer paths read through the body's end before they
commit (``_Upload.run`` until no stripe is left, ``_write_inline`` by asking for one byte more
than announced), so a body that fails a check never becomes an object, and the chunks already
on nodes are rolled back with the upload. Memory stays stripes in flight × stripe size,
whatever size the client's chunks announce.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
from collections import deque
from collections.abc import Collection, Mapping
from typing import Protocol

from diststorage.core.errors import (
    BadDigest,
    InvalidRequest,
    PayloadTooLarge,
    XAmzContentSHA256Mismatch,
)
from diststorage.gateway.auth.checks import (
    BodyChecks,
    body_checks_from_headers,
    decoded_size,
    lowered,
)
from diststorage.gateway.objects.ports import ByteSource
from diststorage.gateway.objects.writer import INLINE_HASH_BYTES
from diststorage.meta import StoredChecksum
from diststorage.s3auth import (
    AwsChunkedDecoder,
    Checksum,
    ChecksumAlgorithm,
    TrailerResult,
    Verified,
    new_checksum,
    payload_mode,
)

__all__ = [
    "BodyChecks",
    "ChunkedBody",
    "VerifyingBody",
    "body_checks_from_headers",
    "decoded_size",
    "wrap_body",
]

FULL_OBJECT = "FULL_OBJECT"
# The least raw bytes read at a time: a chunk header line and its CRLFs, whatever is asked.
MIN_RAW_READ_BYTES = 64 * 1024


class _Hash(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def digest(self) -> bytes: ...


class ChunkedBody:
    """The decoded bytes of an aws-chunked body.

    Raises what ``AwsChunkedDecoder`` raises, as the bytes reveal it, and PayloadTooLarge past
    ``max_bytes`` decoded bytes. Fewer bytes than asked (and then b"") come only once the
    decoder's ``finish`` passed. ``received`` counts the decoded bytes handed out.
    """

    def __init__(self, source: ByteSource, decoder: AwsChunkedDecoder, max_bytes: int) -> None:
        self._source = source
        self._decoder = decoder
        self._max_bytes = max_bytes
        self._decoded: deque[memoryview] = deque()
        self.trailer: TrailerResult | None = None
        self.received = 0

    async def read_up_to(self, size: int) -> bytes:
        pieces: list[memoryview] = []
        have = 0
        while have < size:
            if self._decoded:
                piece = self._decoded.popleft()
                if len(piece) > size - have:
                    self._decoded.appendleft(piece[size - have :])
                    piece = piece[: size - have]
                pieces.append(piece)
                have += len(piece)
            elif self.trailer is not None:
                break
            else:
                await self._decode_more(size - have)
        self.received += have
        return b"".join(pieces)

    def checksum(self, algo: ChecksumAlgorithm) -> bytes | None:
        """The trailer's verified checksum, once the body ended, if it is of ``algo``."""
        if self.trailer is None or self.trailer.checksum_algorithm is not algo:
            return None
        return self.trailer.checksum

    async def _decode_more(self, wanted: int) -> None:
        raw = await self._source.read_up_to(max(wanted, MIN_RAW_READ_BYTES))
        if not raw:
            self.trailer = self._decoder.finish()
            return
        if len(raw) < INLINE_HASH_BYTES:
            decoded = self._decoder.feed(raw)
        else:
            # The decoder hashes what it decodes: off the event loop, one piece at a time.
            decoded = await asyncio.get_running_loop().run_in_executor(
                None, self._decoder.feed, raw
            )
        if self._decoder.decoded_bytes > self._max_bytes:
            raise PayloadTooLarge(f"the body exceeds the {self._max_bytes}-byte object limit")
        self._decoded.extend(decoded)


class VerifyingBody:
    """A body checked at its end against the signed sha256 (XAmzContentSHA256Mismatch), its
    Content-MD5 and ``x-amz-checksum-*`` header (BadDigest).

    It is also the writer's ``ChecksumSource``: ``stored_checksum`` is the client's checksum
    (header or trailer), else the one of ``store`` (the algorithm a front end computes when
    the client sent none), as a FULL_OBJECT checksum.

    Hashes are updated in one executor call per piece of at least 256 KiB, in order, as the
    writer's MD5 is; smaller pieces are hashed on the event loop. The end is the first read
    that returns fewer bytes than asked: the checks run before that read returns.
    """

    def __init__(
        self, source: ByteSource, checks: BodyChecks, store: ChecksumAlgorithm | None = None
    ) -> None:
        self._source = source
        self._checks = checks
        sent = checks.checksum[0] if checks.checksum is not None else checks.trailer
        self._stored_algorithm = sent or store
        self._sha256 = hashlib.sha256() if checks.sha256_hex is not None else None
        self._md5 = hashlib.md5(usedforsecurity=False) if checks.md5 is not None else None
        self._checksums: dict[ChecksumAlgorithm, Checksum] = {
            algo: new_checksum(algo) for algo in checks.compute if algo is not checks.trailer
        }
        self._pending: asyncio.Future[None] | None = None
        self._ended = False
        self.received = 0

    async def read_up_to(self, size: int) -> bytes:
        data = await self._source.read_up_to(size)
        if self._ended:
            return data
        self.received += len(data)
        await self._hash(data)
        if len(data) < size:
            await self._check()
        return data

    def checksum(self, algo: ChecksumAlgorithm) -> bytes | None:
        """The body's checksum in ``algo`` once it ended, if one was computed or checked."""
        if not self._ended:
            return None
        if algo in self._checksums:
            return self._checksums[algo].digest()
        if isinstance(self._source, ChunkedBody):
            return self._source.checksum(algo)
        return None

    def stored_checksum(self) -> StoredChecksum | None:
        algo = self._stored_algorithm
        digest = self.checksum(algo) if algo is not None else None
        if algo is None or digest is None:
            return None
        return StoredChecksum(algo.value, FULL_OBJECT, base64.b64encode(digest).decode("ascii"))

    async def _hash(self, data: bytes) -> None:
        if self._pending is not None:
            await self._pending
            self._pending = None
        if not data:
            return
        if len(data) < INLINE_HASH_BYTES:
            self._update(data)
        else:
            self._pending = asyncio.get_running_loop().run_in_executor(None, self._update, data)

    def _update(self, data: bytes) -> None:
        hashes: list[_Hash | Checksum] = [*self._checksums.values()]
        hashes += [h for h in (self._sha256, self._md5) if h is not None]
        for each in hashes:
            each.update(data)

    async def _check(self) -> None:
        await self._hash(b"")
        self._ended = True
        checks = self._checks
        if self._sha256 is not None and self._sha256.hexdigest() != checks.sha256_hex:
            raise XAmzContentSHA256Mismatch(
                "The provided 'x-amz-content-sha256' header does not match what was computed."
            )
        if self._md5 is not None and not hmac.compare_digest(self._md5.digest(), checks.md5 or b""):
            raise BadDigest("The Content-MD5 you specified did not match what we received.")
        if checks.checksum is not None:
            algo, expected = checks.checksum
            if not hmac.compare_digest(self._checksums[algo].digest(), expected):
                raise BadDigest(f"The {algo} you specified did not match the calculated checksum.")


def wrap_body(
    raw: ByteSource,
    verified: Verified | None,
    headers: Mapping[str, str],
    max_bytes: int,
    extra_checksums: Collection[ChecksumAlgorithm] = (),
) -> tuple[VerifyingBody, BodyChecks]:
    """The body to hand the pipelines, and what it checks.

    ``extra_checksums`` are computed too; the first is the one stored when the client sent
    no checksum. ``verified`` is None for a request that was not authenticated (authentication
    off): its framing still follows ``x-amz-content-sha256``, but a signed aws-chunked body
    cannot be checked without a signature and is refused (InvalidRequest). ``max_bytes``
    bounds the decoded bytes of an aws-chunked body; a raw body's bound is ``raw``'s own.
    Raises what ``body_checks_from_headers`` raises.
    """
    if verified is None:
        verified = _unauthenticated(headers)
    checks = body_checks_from_headers(verified, headers, extra_checksums)
    source = raw
    if verified.payload.is_chunked:
        decoder = AwsChunkedDecoder(
            verified.payload,
            verified.chunk_seed,
            lowered(headers).get("x-amz-trailer"),
            checks.decoded_length,
        )
        source = ChunkedBody(raw, decoder, max_bytes)
    store = next(iter(extra_checksums), None)
    return VerifyingBody(source, checks, store), checks


def _unauthenticated(headers: Mapping[str, str]) -> Verified:
    value = lowered(headers).get("x-amz-content-sha256")
    if value is None:
        return Verified("", payload_mode("UNSIGNED-PAYLOAD")[0], None, presigned=False)
    mode, sha256 = payload_mode(value)
    if mode.signs_chunks:
        raise InvalidRequest("a signed aws-chunked body needs a signed request")
    return Verified("", mode, sha256, presigned=False)
