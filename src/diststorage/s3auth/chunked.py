"""The aws-chunked body decoder: an incremental state machine, checking as the bytes pass.

Hand-written because no library decodes this S3-only framing on the server side, and the S3
servers that do either buffer whole chunks (up to 4 GiB in one) or skip the trailer
signature. The framing, by ``x-amz-content-sha256``::

    STREAMING-AWS4-HMAC-SHA256-PAYLOAD           hex;chunk-signature=sig CRLF data CRLF …
                                                 0;chunk-signature=sig CRLF CRLF
    STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER   … as above to the 0-chunk, then
                                                 x-amz-checksum-X:b64 CRLF
                                                 x-amz-trailer-signature:sig CRLF CRLF
    STREAMING-UNSIGNED-PAYLOAD-TRAILER           hex CRLF data CRLF … 0 CRLF
                                                 x-amz-checksum-X:b64 CRLF CRLF

A chunk's signature is HMAC(signing key, ``AWS4-HMAC-SHA256-PAYLOAD \\n date \\n scope \\n
previous signature \\n sha256("") \\n sha256(chunk)``), chained from the seed (the headers'
signature); the 0-chunk is signed too. The trailer's is HMAC(signing key,
``AWS4-HMAC-SHA256-TRAILER \\n date \\n scope \\n 0-chunk's signature \\n
sha256("x-amz-checksum-X:b64\\n")``), as AWS's published example and MinIO compute it.

Lenient, as real clients need: no final CRLF (the body may end after the 0-chunk or after the
last trailer line), a ``\\n`` before a trailer line's CRLF, and ``;chunk-signature=`` on chunks
of an unsigned stream (ignored, as is a trailer signature there). Strict: a declared trailer
that is missing, a trailer not declared, a decoded length other than the declared one, a cut
mid-chunk, bytes after the end, and a header line or trailer section over ``max_line_bytes``.

Chunk data is never buffered: ``feed`` hands out views of the bytes it was given as they come,
hashing them on the way, and checks each chunk's signature at that chunk's end. Besides what it
returns, it holds at most ``max_line_bytes`` of a line.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from enum import Enum, auto

from diststorage.core.errors import (
    BadDigest,
    IncompleteBody,
    InvalidRequest,
    MalformedTrailer,
    SignatureDoesNotMatch,
)
from diststorage.s3auth.canonical import EMPTY_SHA256, signature_hex
from diststorage.s3auth.checksums import (
    Checksum,
    ChecksumAlgorithm,
    algorithm_from_header,
    decode_b64_checksum,
    header_name,
    new_checksum,
)
from diststorage.s3auth.payload import ChunkSeed, PayloadMode

MAX_CHUNK_BYTES = 16 * 1024 * 1024
MAX_LINE_BYTES = 4096
TRAILER_SIGNATURE = "x-amz-trailer-signature"
_CHUNK_SIGNATURE = b"chunk-signature="
_HEX_SIZE = re.compile(rb"[0-9a-fA-F]{1,16}")
_CRLF = b"\r\n"


@dataclass(frozen=True, slots=True)
class TrailerResult:
    """The end of a body that passed every check: its decoded length and, when a checksum
    trailer was declared, that algorithm and the (verified) digest of the decoded bytes."""

    decoded_bytes: int
    checksum_algorithm: ChecksumAlgorithm | None
    checksum: bytes | None


class _State(Enum):
    CHUNK_LINE = auto()
    DATA = auto()
    DATA_CRLF = auto()
    TRAILERS = auto()
    DONE = auto()


def declared_trailer(mode: PayloadMode, trailer: str | None) -> ChecksumAlgorithm | None:
    """The checksum an ``x-amz-trailer`` value announces; raises InvalidRequest for anything
    but one ``x-amz-checksum-*`` name, or for a trailer on a payload mode without one."""
    if trailer is None or not trailer.strip():
        return None
    if not mode.has_trailer:
        raise InvalidRequest(f"x-amz-trailer needs a …-TRAILER x-amz-content-sha256, not {mode}")
    names = [name.strip() for name in trailer.split(",") if name.strip()]
    algo = algorithm_from_header(names[0]) if len(names) == 1 else None
    if algo is None:
        raise InvalidRequest(f"x-amz-trailer must name one x-amz-checksum-*, not {trailer!r}")
    return algo


class AwsChunkedDecoder:
    """Decodes one aws-chunked body fed in pieces; see the module docstring for the rules.

    ``feed`` raises SignatureDoesNotMatch (a chunk's signature), IncompleteBody (framing) and
    MalformedTrailer; where the trailer section ends (its empty line in ``feed``, else in
    ``finish``) come BadDigest (trailer checksum), InvalidDigest, IncompleteBody (a declared
    trailer missing) and SignatureDoesNotMatch (trailer signature); ``finish`` raises
    IncompleteBody for a body cut short or of another decoded length than declared. After an
    error the decoder is spent.
    """

    def __init__(
        self,
        mode: PayloadMode,
        seed: ChunkSeed | None,
        trailer: str | None,
        decoded_length: int | None,
        max_chunk_bytes: int = MAX_CHUNK_BYTES,
        max_line_bytes: int = MAX_LINE_BYTES,
    ) -> None:
        if not mode.is_chunked:
            raise ValueError(f"{mode} bodies are not aws-chunked")
        if mode.signs_chunks and seed is None:
            raise ValueError(f"{mode} needs the seed of its chunk signatures")
        self._mode = mode
        self._seed = seed if mode.signs_chunks else None
        self._previous = self._seed.seed_signature if self._seed is not None else ""
        self._algorithm = declared_trailer(mode, trailer)
        self._checksum: Checksum | None = (
            new_checksum(self._algorithm) if self._algorithm is not None else None
        )
        self._decoded_length = decoded_length
        self._max_chunk = max_chunk_bytes
        self._max_line = max_line_bytes
        self._state = _State.CHUNK_LINE
        self._line = bytearray()
        self._remaining = 0  # DATA: bytes of the chunk still to come; DATA_CRLF: of the CRLF
        self._chunk_sha = hashlib.sha256()
        self._chunk_signature = ""
        self._decoded = 0
        self._trailers: dict[str, str] = {}
        self._trailer_bytes = 0
        self._bare_lf = False  # the last trailer line ended in "\n" alone

    @property
    def decoded_bytes(self) -> int:
        return self._decoded

    def feed(self, data: bytes | memoryview) -> list[memoryview]:
        """The decoded bytes in ``data``, as views of it (none may be empty)."""
        view = memoryview(data).cast("B")
        pieces: list[memoryview] = []
        at = 0
        while at < len(view):
            if self._state is _State.DATA:
                take = min(self._remaining, len(view) - at)
                pieces.append(self._take_data(view[at : at + take]))
                at += take
            elif self._state is _State.DATA_CRLF:
                at = self._take_crlf(view, at)
            elif self._state is _State.DONE:
                raise IncompleteBody("bytes follow the end of the aws-chunked body")
            else:
                line, at = self._take_line(view, at)
                if line is not None:
                    self._on_line(line)
        return pieces

    def finish(self) -> TrailerResult:
        """Checks the end of the body, once all of it was fed."""
        if self._state is _State.TRAILERS:
            partial = bytes(self._line).rstrip(b"\r")
            self._line.clear()
            if partial:  # the last trailer line, its CRLF missing (lenient)
                self._on_trailer_line(partial + _CRLF)
            if self._state is _State.TRAILERS:  # no final CRLF (lenient)
                self._close_trailers()
        if self._state is not _State.DONE:
            raise IncompleteBody("the body ended inside an aws-chunked chunk")
        if self._decoded_length is not None and self._decoded != self._decoded_length:
            raise IncompleteBody(
                f"x-amz-decoded-content-length announced {self._decoded_length} bytes,"
                f" the body had {self._decoded}"
            )
        digest = self._checksum.digest() if self._checksum is not None else None
        return TrailerResult(self._decoded, self._algorithm, digest)

    def _take_data(self, piece: memoryview) -> memoryview:
        if self._seed is not None:
            self._chunk_sha.update(piece)
        if self._checksum is not None:
            self._checksum.update(piece)
        self._remaining -= len(piece)
        self._decoded += len(piece)
        if self._decoded_length is not None and self._decoded > self._decoded_length:
            raise IncompleteBody(
                f"the body holds more than the {self._decoded_length} bytes"
                " x-amz-decoded-content-length announced"
            )
        if self._remaining == 0:
            self._check_chunk_signature()
            self._state, self._remaining = _State.DATA_CRLF, len(_CRLF)
        return piece

    def _take_crlf(self, view: memoryview, at: int) -> int:
        expected = _CRLF[len(_CRLF) - self._remaining]
        if view[at] != expected:
            raise IncompleteBody("a chunk's data is not followed by CRLF: wrong chunk size?")
        self._remaining -= 1
        if self._remaining == 0:
            self._state = _State.CHUNK_LINE
        return at + 1

    def _take_line(self, view: memoryview, at: int) -> tuple[bytes | None, int]:
        """A whole line (with its ending) once its "\\n" arrived, else None; bounded."""
        room = self._max_line + 1 - len(self._line)
        window = bytes(view[at : at + room])
        end = window.find(b"\n")
        if end < 0:
            self._line += window
            if len(self._line) > self._max_line:
                kind = "trailer" if self._state is _State.TRAILERS else "chunk header"
                raise self._line_error(f"an aws-chunked {kind} line exceeds {self._max_line} B")
            return None, at + len(window)
        line = bytes(self._line) + window[: end + 1]
        self._line.clear()
        return line, at + end + 1

    def _line_error(self, message: str) -> IncompleteBody | MalformedTrailer:
        if self._state is _State.TRAILERS:
            return MalformedTrailer(message)
        return IncompleteBody(message)

    def _on_line(self, line: bytes) -> None:
        if self._state is _State.TRAILERS:
            self._on_trailer_line(line)
        else:
            self._on_chunk_line(line)

    def _on_chunk_line(self, line: bytes) -> None:
        if not line.endswith(_CRLF):
            raise IncompleteBody("an aws-chunked chunk header does not end in CRLF")
        size_text, *extensions = line[: -len(_CRLF)].split(b";")
        size = _chunk_size(size_text)
        if size > self._max_chunk:
            raise IncompleteBody(f"a chunk of {size} bytes exceeds the {self._max_chunk} limit")
        if self._seed is not None:
            self._chunk_signature = _chunk_signature(extensions)
        self._chunk_sha = hashlib.sha256()
        if size == 0:
            self._check_chunk_signature()
            self._state = _State.TRAILERS
        else:
            self._state, self._remaining = _State.DATA, size

    def _check_chunk_signature(self) -> None:
        if self._seed is None:
            return
        seed = self._seed
        to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                seed.amz_date,
                seed.scope,
                self._previous,
                EMPTY_SHA256,
                self._chunk_sha.hexdigest(),
            )
        )
        expected = signature_hex(seed.signing_key, to_sign)
        # As bytes: compare_digest refuses str with non-ASCII (a "\ufffd" decoded from junk).
        if not hmac.compare_digest(expected.encode(), self._chunk_signature.encode()):
            raise SignatureDoesNotMatch("a chunk's signature does not match", to_sign)
        self._previous = expected

    def _on_trailer_line(self, line: bytes) -> None:
        self._trailer_bytes += len(line)
        if self._trailer_bytes > self._max_line:
            raise MalformedTrailer(f"the trailer exceeds {self._max_line} bytes")
        if line == _CRLF and self._bare_lf:
            self._bare_lf = False  # "value\n\r\n": the CRLF ends the line before
            return
        self._bare_lf = not line.endswith(_CRLF)
        if line in (_CRLF, b"\n"):
            self._close_trailers()
            return
        text = line.rstrip(b"\r\n").decode("ascii", "replace")
        name, colon, value = text.partition(":")
        name = name.strip().lower()
        if not colon or name in self._trailers:
            raise MalformedTrailer(f"trailer line {text[:80]!r} is malformed or repeated")
        self._trailers[name] = value.strip()

    def _close_trailers(self) -> None:
        self._state = _State.DONE
        signature = self._trailers.pop(TRAILER_SIGNATURE, None)
        if self._mode is PayloadMode.STREAMING_SIGNED_TRAILER:
            self._check_trailer_signature(signature)
        expected_name = header_name(self._algorithm) if self._algorithm is not None else None
        undeclared = sorted(name for name in self._trailers if name != expected_name)
        if undeclared:
            raise MalformedTrailer(f"trailers not declared in x-amz-trailer: {undeclared}")
        if expected_name is None:
            return
        assert self._algorithm is not None and self._checksum is not None
        if expected_name not in self._trailers:
            raise IncompleteBody(f"the body lacks the {expected_name} trailer it declared")
        sent = decode_b64_checksum(self._algorithm, self._trailers[expected_name])
        if not hmac.compare_digest(sent, self._checksum.digest()):
            raise BadDigest(
                f"the {self._algorithm} you specified did not match the calculated checksum"
            )

    def _check_trailer_signature(self, signature: str | None) -> None:
        assert self._seed is not None
        if signature is None:
            raise MalformedTrailer(f"a signed trailer needs its {TRAILER_SIGNATURE}")
        canonical = "".join(f"{name}:{value}\n" for name, value in self._trailers.items())
        to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256-TRAILER",
                self._seed.amz_date,
                self._seed.scope,
                self._previous,
                hashlib.sha256(canonical.encode("ascii", "replace")).hexdigest(),
            )
        )
        expected = signature_hex(self._seed.signing_key, to_sign)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise SignatureDoesNotMatch("the trailer's signature does not match", to_sign)


def _chunk_size(text: bytes) -> int:
    if not _HEX_SIZE.fullmatch(text):
        raise IncompleteBody(f"chunk size {text[:20]!r} is not a hex number")
    return int(text, 16)


def _chunk_signature(extensions: list[bytes]) -> str:
    for extension in extensions:
        if extension.startswith(_CHUNK_SIGNATURE):
            return extension[len(_CHUNK_SIGNATURE) :].decode("ascii", "replace").lower()
    raise IncompleteBody("a chunk of a signed aws-chunked body lacks its chunk-signature")
