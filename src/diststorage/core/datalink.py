"""The data link: a chunk's blocks from a node to a gateway over a TCP connection of its own,
framed by hand and sealed under a key that is handed out over the cluster's mutually
authenticated gRPC channel.

Why not gRPC for these bytes: grpcio's Python layer copies every byte it receives three times
(into a bytes object per slice, into a growing bytearray, into the final bytes) and hands each
message from its own thread to the event loop; a download is mostly that. Why not TLS: the
``ssl`` module is the system's OpenSSL, whose AES-GCM here ran at about 1 GB/s, where the
``cryptography`` package's (a newer OpenSSL, built in) seals and opens at about 8 GB/s. So the
handshake that needs certificates stays where it is, on gRPC under mutual TLS
(``OpenDataLink``), and the bulk bytes move under an AEAD from ``cryptography``, the one
cryptographic primitive used here; nothing is invented beyond how it is keyed and framed:

- **Link secret.** The node makes a random 32-byte key and a random 16-byte id for it, and
  gives both to a gateway that calls ``OpenDataLink`` over the mTLS channel (so only holders
  of the cluster credential get one). It keeps a bounded table of them, in memory only.
- **Connection.** The gateway sends ``HELLO`` = magic, link id, a random 32-byte salt. The
  node answers ``ACCEPT`` and a salt of its own, or ``REFUSE`` (an id it does not know, e.g.
  after a restart) and closes. Both derive two keys, one per direction, with HKDF-SHA256 over
  the link key, salted with both salts: every connection has keys of its own.
- **Frames.** A 4-byte big-endian length, then the body sealed with AES-256-GCM under that
  direction's key, the nonce being the direction's frame counter, the length the associated
  data. A frame that does not open (forged, altered, replayed, reordered, dropped, or sealed
  under another connection's key) ends the connection. Nonces never repeat under a key:
  counters start at 0 on each connection, and each connection has fresh keys.
- **Insecure clusters** (``--insecure-cluster``, the gRPC links being plaintext too): the link
  id is all zeros and frames go in the clear.

What a connection carries (``Message``): a ``GET`` (chunk id, range, request id) from the
gateway, then from the node a ``BLOCK`` head and a data frame per block, ``END`` or an
``ERROR`` with its kind. One request at a time per connection; connections are reused.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAGIC = b"DSL1"
LINK_ID_BYTES = 16
KEY_BYTES = 32
SALT_BYTES = 32
INSECURE_LINK_ID = bytes(LINK_ID_BYTES)
ACCEPT, REFUSE = b"\x01", b"\x00"
_HKDF_INFO = b"diststorage data link 1"
_LENGTH = struct.Struct(">I")
_TAG_BYTES = 16
# Frames queued ahead of their reader before the connection stops reading (two blocks).
_QUEUED_FRAMES = 4


class LinkError(Exception):
    """The connection broke, or carried something that is not the data link's."""


@dataclass(frozen=True, slots=True)
class LinkSecret:
    link_id: bytes
    key: bytes
    """Empty on an insecure cluster."""

    @property
    def secure(self) -> bool:
        return bool(self.key)


INSECURE_LINK = LinkSecret(INSECURE_LINK_ID, b"")


def new_link_secret() -> LinkSecret:
    return LinkSecret(os.urandom(LINK_ID_BYTES), os.urandom(KEY_BYTES))


def hello(link_id: bytes, salt: bytes) -> bytes:
    return MAGIC + link_id + salt


def parse_hello(body: bytes) -> tuple[bytes, bytes]:
    """The link id and salt of a HELLO; LinkError if it is not one."""
    if len(body) != len(MAGIC) + LINK_ID_BYTES + SALT_BYTES or not body.startswith(MAGIC):
        raise LinkError("not a data link hello")
    return body[4 : 4 + LINK_ID_BYTES], body[4 + LINK_ID_BYTES :]


class Seal:
    """One direction of a connection: frames sealed (or, insecure, framed) in order."""

    def __init__(self, key: bytes | None) -> None:
        self._aead = AESGCM(key) if key else None
        self._counter = 0

    def frame(self, body: bytes | memoryview) -> tuple[bytes, bytes | memoryview]:
        """The frame's length header and body, to be written in that order."""
        if self._aead is None:
            return _LENGTH.pack(len(body)), body
        header = _LENGTH.pack(len(body) + _TAG_BYTES)
        sealed = self._aead.encrypt(self._nonce(), body, header)
        return header, sealed

    def _nonce(self) -> bytes:
        nonce = self._counter.to_bytes(12, "big")
        self._counter += 1
        return nonce


class Unseal:
    """The other end of a ``Seal``: opens frames in the order they were sealed."""

    def __init__(self, key: bytes | None) -> None:
        self._aead = AESGCM(key) if key else None
        self._counter = 0

    @property
    def sealed(self) -> bool:
        return self._aead is not None

    def body(self, header: bytes, sealed: bytearray | memoryview) -> bytes | memoryview:
        if self._aead is None:
            return memoryview(sealed)
        nonce = self._counter.to_bytes(12, "big")
        self._counter += 1
        try:
            return self._aead.decrypt(nonce, sealed, header)
        except InvalidTag as exc:
            raise LinkError("a frame failed its authentication") from exc


def connection_keys(
    secret: LinkSecret, client_salt: bytes, server_salt: bytes
) -> tuple[bytes | None, bytes | None]:
    """(gateway → node key, node → gateway key); (None, None) on an insecure link."""
    if not secret.secure:
        return None, None
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=2 * KEY_BYTES,
        salt=client_salt + server_salt,
        info=_HKDF_INFO,
    ).derive(secret.key)
    return derived[:KEY_BYTES], derived[KEY_BYTES:]


class Kind(enum.Enum):
    GET = b"G"
    BLOCK = b"B"
    END = b"E"
    ERROR = b"X"


class Failure(enum.Enum):
    """What an ERROR says went wrong, for the gateway to map to its own errors."""

    NOT_FOUND = 1
    DATA_LOSS = 2
    INVALID = 3
    UNAVAILABLE = 4


_GET = struct.Struct(">QQ")
_BLOCK = struct.Struct(">QI?")
CHUNK_ID_BYTES = 32


@dataclass(frozen=True, slots=True)
class Get:
    chunk_id: str
    offset: int
    length: int
    request_id: str | None


@dataclass(frozen=True, slots=True)
class BlockHead:
    offset: int
    crc32c: int
    whole_block: bool


@dataclass(frozen=True, slots=True)
class Error:
    failure: Failure
    message: str


Message = Get | BlockHead | Error | None
"""A decoded message; None is END."""


def encode_get(get: Get) -> bytes:
    chunk_id = get.chunk_id.encode("ascii")
    if len(chunk_id) != CHUNK_ID_BYTES:
        raise ValueError(f"a chunk id is {CHUNK_ID_BYTES} characters")
    request_id = (get.request_id or "").encode("ascii")
    return Kind.GET.value + _GET.pack(get.offset, get.length) + chunk_id + request_id


def encode_block_head(head: BlockHead) -> bytes:
    return Kind.BLOCK.value + _BLOCK.pack(head.offset, head.crc32c, head.whole_block)


def encode_end() -> bytes:
    return Kind.END.value


def encode_error(error: Error) -> bytes:
    message = error.message.encode("utf-8", "replace")[:1024]
    return Kind.ERROR.value + bytes([error.failure.value]) + message


def decode(body: bytes | bytearray | memoryview) -> Message:
    """A message body; LinkError for anything else."""
    try:
        kind = Kind(bytes(body[:1]))
        if kind is Kind.GET:
            offset, length = _GET.unpack_from(body, 1)
            start = 1 + _GET.size
            chunk_id = bytes(body[start : start + CHUNK_ID_BYTES]).decode("ascii")
            request_id = bytes(body[start + CHUNK_ID_BYTES :]).decode("ascii") or None
            if len(chunk_id) != CHUNK_ID_BYTES:
                raise LinkError("a GET without its chunk id")
            return Get(chunk_id, offset, length, request_id)
        if kind is Kind.BLOCK:
            if len(body) != 1 + _BLOCK.size:
                raise LinkError("a block head of the wrong size")
            return BlockHead(*_BLOCK.unpack_from(body, 1))
        if kind is Kind.ERROR:
            failure = Failure(body[1])
            return Error(failure, bytes(body[2:]).decode("utf-8", "replace"))
        if len(body) != 1:
            raise LinkError("an END with a body")
        return None
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise LinkError(f"not a data link message: {exc}") from exc


async def read_frame(reader: asyncio.StreamReader, max_bytes: int) -> tuple[bytes, bytearray]:
    """One frame's header and (sealed) body from a stream: for the node's side, whose frames
    are small requests. LinkError on a frame over ``max_bytes`` or a connection cut."""
    try:
        header = await reader.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(header)
        if length > max_bytes:
            raise LinkError(f"a frame of {length} bytes")
        return header, bytearray(await reader.readexactly(length))
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise LinkError("the connection closed") from exc


_MAX_HELLO_BYTES = 1024


async def answer_hello(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    secret_of: Callable[[bytes], LinkSecret | None],
) -> tuple[Unseal, Seal] | None:
    """The node's side of the handshake: reads a HELLO and answers it. The connection's
    (inbound, outbound) ends, or None once a link id ``secret_of`` does not know is refused."""
    _, body = await read_frame(reader, _MAX_HELLO_BYTES)
    link_id, client_salt = parse_hello(bytes(body))
    secret = secret_of(link_id)
    plain = Seal(None)
    if secret is None:
        writer.write(b"".join(plain.frame(REFUSE)))
        await writer.drain()
        return None
    server_salt = os.urandom(SALT_BYTES)
    writer.write(b"".join(plain.frame(ACCEPT + server_salt)))
    inbound, outbound = connection_keys(secret, client_salt, server_salt)
    return Unseal(inbound), Seal(outbound)


async def say_hello(receiver: FrameReceiver, secret: LinkSecret) -> Seal | None:
    """The gateway's side of the handshake: sends a HELLO and reads the answer. The outbound
    end (the receiver opens the node's frames from then on), or None if the node refused."""
    salt = os.urandom(SALT_BYTES)
    receiver.write(*Seal(None).frame(hello(secret.link_id, salt)))
    reply = await receiver.next_body()
    if reply[:1] != ACCEPT or len(reply) != 1 + SALT_BYTES:
        return None
    outbound, inbound = connection_keys(secret, salt, bytes(reply[1:]))
    receiver.unseal = Unseal(inbound)
    return Seal(outbound)


class FrameReceiver(asyncio.BufferedProtocol):
    """The gateway's end of a connection: reads each frame straight into a buffer of its own
    (no copy on the way in) and opens it; at most ``_QUEUED_FRAMES`` wait to be taken before
    it stops reading, so a slow consumer holds two blocks, not the node's whole stream."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.unseal = Unseal(None)
        self._max = max_frame_bytes
        self._header = bytearray(_LENGTH.size)
        self._body: bytearray | None = None
        self._reused = bytearray()
        self._filled = self._length = 0
        self._frames: collections.deque[bytes | memoryview] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._error: LinkError | None = None
        self._transport: asyncio.Transport | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._body is None:
            return memoryview(self._header)[self._filled :]
        return memoryview(self._body)[self._filled : self._length]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        if self._body is None:
            if self._filled < _LENGTH.size:
                return
            (length,) = _LENGTH.unpack(self._header)
            if length > self._max:
                self._fail(LinkError(f"a frame of {length} bytes"))
                return
            self._body, self._filled, self._length = self._buffer_for(length), 0, length
            if length:
                return
        if self._filled < self._length:
            return
        body = memoryview(self._body)[: self._length]
        self._body, self._filled = None, 0
        try:
            self._frames.append(self.unseal.body(bytes(self._header), body))
        except LinkError as error:
            self._fail(error)
            return
        if len(self._frames) >= _QUEUED_FRAMES and self._transport is not None:
            self._transport.pause_reading()
            self._paused = True
        self._wake()

    def _buffer_for(self, length: int) -> bytearray:
        """Where a frame of ``length`` bytes is read to. A sealed frame is opened into bytes
        of its own, so one buffer serves every frame of the connection (a new bytearray is
        zeroed first, as costly as a copy); a frame in the clear is handed on as it is, so it
        gets a buffer of its own."""
        if not self.unseal.sealed:
            return bytearray(length)
        if len(self._reused) < length:
            self._reused = bytearray(length)
        return self._reused

    def release_buffer(self) -> None:
        """Lets the reused buffer go (a connection going idle holds no block's worth)."""
        self._reused = bytearray()

    def eof_received(self) -> bool:
        self._fail(LinkError("the node closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(LinkError(f"the connection was lost: {exc or 'closed'}"))

    def _fail(self, error: LinkError) -> None:
        if self._error is None:
            self._error = error
        if self._transport is not None:
            self._transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_body(self) -> bytes | memoryview:
        """The next frame's opened body; LinkError once the connection broke."""
        while not self._frames:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        body = self._frames.popleft()
        if self._paused and len(self._frames) < _QUEUED_FRAMES // 2 and self._transport:
            self._paused = False
            self._transport.resume_reading()
        return body

    def write(self, header: bytes, body: bytes | memoryview) -> None:
        if self._transport is None or self._transport.is_closing():
            raise LinkError("the connection is closed")
        self._transport.write(header)
        self._transport.write(body)

    @property
    def usable(self) -> bool:
        return (
            self._error is None
            and self._transport is not None
            and not (self._transport.is_closing())
        )

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
