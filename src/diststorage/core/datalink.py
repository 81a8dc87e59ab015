"""The data link: a chunk's blocks between a gateway and a node, both ways, over a TCP
connection of its own, framed by hand and sealed under a key that is handed out over the
cluster's mutually authenticated gRPC channel.

Why not gRPC for these bytes: grpcio's Python layer copies every byte it receives three times
(into a bytes object per slice, into a growing bytearray, into the final bytes) and hands each
message from its own thread to the event loop; a download is mostly that, and so is a node's
share of an upload. Why not TLS: the ``ssl`` module is the system's OpenSSL, whose AES-GCM
here ran at about 1 GB/s, where the ``cryptography`` package's (a newer OpenSSL, built in)
seals and opens at about 8 GB/s. So the handshake that needs certificates stays where it is,
on gRPC under mutual TLS (``OpenDataLink``), and the bulk bytes move under an AEAD from
``cryptography``, the one cryptographic primitive used here; nothing is invented beyond how
it is keyed and framed:

- **Link secret.** The node makes a random 32-byte key and a random 16-byte id for it, and
  gives both to a gateway that calls ``OpenDataLink`` over the mTLS channel (so only holders
  of the cluster credential get one). It keeps a bounded table of them, in memory only.
- **Connection.** The gateway sends ``HELLO`` = magic, link id, a random 32-byte salt. The
  node answers ``ACCEPT`` and a salt of its own, or ``REFUSE`` (an id it does not know, e.g.
  after a restart) and closes. Both derive two keys, one per direction, with HKDF-SHA256 over
  the link key, salted with both salts: every connection has keys of its own. Nothing may
  follow a HELLO or an ACCEPT before its answer: a frame that did was read in the clear, and
  ends the connection.
- **Frames.** A 4-byte big-endian length, then the body sealed with AES-256-GCM under that
  direction's key, the nonce being the direction's frame counter, the length the associated
  data. A frame that does not open (forged, altered, replayed, reordered, dropped, or sealed
  under another connection's key) ends the connection. Nonces never repeat under a key:
  counters start at 0 on each connection, and each connection has fresh keys.
- **Insecure clusters** (``--insecure-cluster``, the gRPC links being plaintext too): the link
  id is all zeros and frames go in the clear.

What a connection carries (``Message``), one request at a time, connections being reused:

- a read: ``GET`` (chunk id, range, request id) from the gateway; from the node a ``BLOCK``
  head and a data frame per block, then ``END``, or an ``ERROR`` with its kind;
- a write: ``PUT`` (chunk id, expected bytes, request id), a ``BLOCK`` head (its offset in
  the chunk and CRC-32C) and a data frame per block, then ``END`` from the gateway; from the
  node ``STORED`` (bytes and blocks, once durable), or an ``ERROR``, which may come before the
  gateway's ``END`` (a block failed its CRC, the disk filled up): the node then reads and
  drops the rest of the write up to its ``END``.

Each end reads frames with a ``FrameConnection``: straight into a buffer of its own, a few
frames ahead at most, and writes with the transport's flow control.
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

from diststorage.core.rawbuffers import unfilled_bytearray

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
# What a connection's transport buffers before a writer must wait for the peer: a block's
# worth, so that the next one is sealed while the kernel sends the last.
_WRITE_HIGH_BYTES = 1 << 20
_WRITE_LOW_BYTES = 256 << 10
MAX_HELLO_BYTES = 1024
"""The largest frame a node reads before the hello: a stranger's frames are small."""


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


Frame = tuple[bytes, bytes | bytearray | memoryview]
"""A frame as written: its length header and its (sealed) body."""


class Seal:
    """One direction of a connection: frames sealed (or, insecure, framed) in order."""

    def __init__(self, key: bytes | None) -> None:
        self._aead = AESGCM(key) if key else None
        self._counter = 0

    def frame(self, body: bytes | memoryview) -> Frame:
        """The frame's length header and body, to be written in that order."""
        if self._aead is None:
            return _LENGTH.pack(len(body)), body
        header = _LENGTH.pack(len(body) + _TAG_BYTES)
        sealed = unfilled_bytearray(len(body) + _TAG_BYTES)
        self._aead.encrypt_into(self._nonce(), body, header, sealed)
        return header, sealed

    def frames(self, *bodies: bytes | memoryview) -> list[Frame]:
        """The bodies as frames, sealed in order, for one ``FrameConnection.write``."""
        return [self.frame(body) for body in bodies]

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
        if len(sealed) < _TAG_BYTES:
            raise LinkError("a frame too short for its authentication tag")
        nonce = self._counter.to_bytes(12, "big")
        self._counter += 1
        opened = unfilled_bytearray(len(sealed) - _TAG_BYTES)
        try:
            self._aead.decrypt_into(nonce, sealed, header, opened)
        except InvalidTag as exc:
            raise LinkError("a frame failed its authentication") from exc
        return memoryview(opened)


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
    PUT = b"P"
    BLOCK = b"B"
    END = b"E"
    STORED = b"S"
    ERROR = b"X"


class Failure(enum.Enum):
    """What an ERROR says went wrong, for the gateway to map to its own errors."""

    NOT_FOUND = 1
    DATA_LOSS = 2
    INVALID = 3
    UNAVAILABLE = 4
    NO_SPACE = 5
    EXISTS = 6


_GET = struct.Struct(">QQ")
_PUT = struct.Struct(">Q")
_BLOCK = struct.Struct(">QI?")
_STORED = struct.Struct(">QQ")
CHUNK_ID_BYTES = 32


@dataclass(frozen=True, slots=True)
class Get:
    chunk_id: str
    offset: int
    length: int
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Put:
    chunk_id: str
    expected_bytes: int
    request_id: str | None


@dataclass(frozen=True, slots=True)
class Stored:
    size_bytes: int
    block_count: int


@dataclass(frozen=True, slots=True)
class BlockHead:
    offset: int
    crc32c: int
    whole_block: bool


@dataclass(frozen=True, slots=True)
class Error:
    failure: Failure
    message: str


Message = Get | Put | BlockHead | Stored | Error | None
"""A decoded message; None is END."""


def _chunk_and_request(chunk_id: str, request_id: str | None) -> bytes:
    encoded = chunk_id.encode("ascii")
    if len(encoded) != CHUNK_ID_BYTES:
        raise ValueError(f"a chunk id is {CHUNK_ID_BYTES} characters")
    return encoded + (request_id or "").encode("ascii")


def _read_chunk_and_request(
    body: bytes | bytearray | memoryview, start: int
) -> tuple[str, str | None]:
    chunk_id = bytes(body[start : start + CHUNK_ID_BYTES]).decode("ascii")
    if len(chunk_id) != CHUNK_ID_BYTES:
        raise LinkError("a request without its chunk id")
    request_id = bytes(body[start + CHUNK_ID_BYTES :]).decode("ascii") or None
    return chunk_id, request_id


def encode_get(get: Get) -> bytes:
    return (
        Kind.GET.value
        + _GET.pack(get.offset, get.length)
        + _chunk_and_request(get.chunk_id, get.request_id)
    )


def encode_put(put: Put) -> bytes:
    return (
        Kind.PUT.value
        + _PUT.pack(put.expected_bytes)
        + _chunk_and_request(put.chunk_id, put.request_id)
    )


def encode_stored(stored: Stored) -> bytes:
    return Kind.STORED.value + _STORED.pack(stored.size_bytes, stored.block_count)


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
            chunk_id, request_id = _read_chunk_and_request(body, 1 + _GET.size)
            return Get(chunk_id, offset, length, request_id)
        if kind is Kind.PUT:
            (expected_bytes,) = _PUT.unpack_from(body, 1)
            chunk_id, request_id = _read_chunk_and_request(body, 1 + _PUT.size)
            return Put(chunk_id, expected_bytes, request_id)
        if kind is Kind.BLOCK:
            if len(body) != 1 + _BLOCK.size:
                raise LinkError("a block head of the wrong size")
            return BlockHead(*_BLOCK.unpack_from(body, 1))
        if kind is Kind.STORED:
            if len(body) != 1 + _STORED.size:
                raise LinkError("a STORED of the wrong size")
            return Stored(*_STORED.unpack_from(body, 1))
        if kind is Kind.ERROR:
            failure = Failure(body[1])
            return Error(failure, bytes(body[2:]).decode("utf-8", "replace"))
        if len(body) != 1:
            raise LinkError("an END with a body")
        return None
    except (ValueError, IndexError, struct.error, UnicodeDecodeError) as exc:
        raise LinkError(f"not a data link message: {exc}") from exc


async def answer_hello(
    connection: FrameConnection,
    secret_of: Callable[[bytes], LinkSecret | None],
    max_frame_bytes: int,
) -> Seal | None:
    """The node's side of the handshake: reads a HELLO and answers it. The outbound end (the
    connection opens the gateway's frames from then on, up to ``max_frame_bytes``), or None
    once a link id ``secret_of`` does not know is refused."""
    link_id, client_salt = parse_hello(bytes(await connection.next_body()))
    _refuse_frames_ahead(connection)
    secret = secret_of(link_id)
    plain = Seal(None)
    if secret is None:
        connection.write(plain.frame(REFUSE))
        await connection.drain()
        return None
    server_salt = os.urandom(SALT_BYTES)
    inbound, outbound = connection_keys(secret, client_salt, server_salt)
    # Switched before the ACCEPT goes out, with no await between: every frame after the
    # hello is opened under the connection's key.
    connection.unseal = Unseal(inbound)
    connection.max_frame_bytes = max_frame_bytes
    connection.write(plain.frame(ACCEPT + server_salt))
    return Seal(outbound)


async def say_hello(connection: FrameConnection, secret: LinkSecret) -> Seal | None:
    """The gateway's side of the handshake: sends a HELLO and reads the answer. The outbound
    end (the connection opens the node's frames from then on), or None if the node refused."""
    salt = os.urandom(SALT_BYTES)
    connection.write(Seal(None).frame(hello(secret.link_id, salt)))
    reply = await connection.next_body()
    _refuse_frames_ahead(connection)
    if reply[:1] != ACCEPT or len(reply) != 1 + SALT_BYTES:
        return None
    outbound, inbound = connection_keys(secret, salt, bytes(reply[1:]))
    connection.unseal = Unseal(inbound)
    return Seal(outbound)


def _refuse_frames_ahead(connection: FrameConnection) -> None:
    """Nothing may follow a handshake frame before its answer: a frame read ahead of the
    switch to the connection's keys was taken in the clear, so whoever sent it ends here."""
    if connection.pending:
        raise LinkError("frames ahead of the handshake")


class FrameConnection(asyncio.BufferedProtocol):
    """Either end of a data-link connection.

    Reads each frame straight into a buffer of its own (no copy on the way in) and opens it;
    at most ``_QUEUED_FRAMES`` wait to be taken before it stops reading, so a slow consumer
    holds two blocks, not the peer's whole stream. Writes go to the transport at once;
    ``drain`` waits while the transport holds more than a block's worth for the peer."""

    def __init__(
        self,
        max_frame_bytes: int,
        on_connected: Callable[[FrameConnection], None] | None = None,
    ) -> None:
        self.unseal = Unseal(None)
        self.max_frame_bytes = max_frame_bytes
        self._on_connected = on_connected
        self._header = bytearray(_LENGTH.size)
        self._body: bytearray | None = None
        self._reused = bytearray()
        self._filled = self._length = 0
        self._frames: collections.deque[bytes | memoryview] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._error: LinkError | None = None
        self._transport: asyncio.Transport | None = None
        self._paused = False
        self._write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but behave as one.
        self._transport = cast(asyncio.Transport, transport)
        self._transport.set_write_buffer_limits(_WRITE_HIGH_BYTES, _WRITE_LOW_BYTES)
        if self._on_connected is not None:
            self._on_connected(self)

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
            if length > self.max_frame_bytes:
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
        """Where a frame of ``length`` bytes is read to: a frame is handed on only once it
        filled its buffer, so none is zeroed first. A sealed frame is opened into a buffer of
        its own, so one buffer serves every frame of the connection; a frame in the clear is
        handed on as it is, so it gets a buffer of its own."""
        if not self.unseal.sealed:
            return unfilled_bytearray(length)
        if len(self._reused) < length:
            self._reused = unfilled_bytearray(length)
        return self._reused

    def release_buffer(self) -> None:
        """Lets the reused buffer go (a connection going idle holds no block's worth)."""
        if self._body is not self._reused:
            self._reused = bytearray()

    def eof_received(self) -> bool:
        self._fail(LinkError("the peer closed the connection"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(LinkError(f"the connection was lost: {exc or 'closed'}"))

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def _fail(self, error: LinkError) -> None:
        if self._error is None:
            self._error = error
        if self._transport is not None:
            self._transport.close()
        self._wake()
        self.resume_writing()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    @property
    def pending(self) -> bool:
        """A frame came that nobody took yet."""
        return bool(self._frames)

    async def next_body(self) -> bytes | memoryview:
        """The next frame's opened body; LinkError once the connection broke."""
        while not self._frames:
            if self._error is not None:
                raise self._error
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        return self.take()

    def take(self) -> bytes | memoryview:
        """The next frame's opened body without waiting (IndexError unless ``pending``)."""
        body = self._frames.popleft()
        if self._paused and len(self._frames) < _QUEUED_FRAMES // 2 and self._transport:
            self._paused = False
            self._transport.resume_reading()
        return body

    def write(self, *frames: Frame) -> None:
        """Hands the frames (``Seal.frame``'s) to the transport in one go: uvloop sends each
        ``write`` at once, so a block head and its block written apart went out as four
        segments, each read by the peer on its own; together they leave in one ``writev``."""
        if self._error is not None:
            raise self._error
        if self._transport is None or self._transport.is_closing():
            raise LinkError("the connection is closed")
        self._transport.writelines([part for frame in frames for part in frame])

    async def drain(self) -> None:
        """Returns once the transport holds less than its low mark for the peer; LinkError
        once the connection broke."""
        while self._write_paused and self._error is None:
            self._drained = asyncio.get_running_loop().create_future()
            await self._drained
        if self._error is not None:
            raise self._error

    @property
    def usable(self) -> bool:
        return (
            self._error is None
            and self._transport is not None
            and not (self._transport.is_closing())
        )

    @property
    def peer(self) -> object:
        return None if self._transport is None else self._transport.get_extra_info("peername")

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
