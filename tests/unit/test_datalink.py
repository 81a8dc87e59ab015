"""The data link (core/datalink.py): its sealing, its messages, and a node's server
(node/datalink_server.py) read and written by the gateway's client
(gateway/datalink_client.py) over loopback, sealed and in the clear, against a real chunk
store."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import struct
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import crc32c
import pytest
from hypothesis import given
from hypothesis import strategies as st

from diststorage.core.datalink import (
    ACCEPT,
    REFUSE,
    SALT_BYTES,
    BlockHead,
    Error,
    Failure,
    FrameConnection,
    Get,
    LinkError,
    LinkSecret,
    Put,
    Seal,
    Stored,
    Unseal,
    answer_hello,
    connection_keys,
    decode,
    encode_block_head,
    encode_end,
    encode_error,
    encode_get,
    encode_put,
    encode_stored,
    hello,
    new_link_secret,
    say_hello,
)
from diststorage.core.errors import (
    AlreadyExists,
    ChunkNotFound,
    DataLoss,
    InsufficientStorage,
    InvalidRequest,
    NodeUnavailable,
)
from diststorage.core.ids import new_id
from diststorage.gateway.datalink_client import DataLink, LinkOffer
from diststorage.node import ChunkStore
from diststorage.node.datalink_server import DataLinkServer

BLOCKS = [random.Random(3).randbytes(size) for size in (70_000, 70_000, 1234)]


def _open(unseal: Unseal, frame: tuple[bytes, bytes | bytearray | memoryview]) -> bytes:
    header, body = frame
    return bytes(unseal.body(header, bytearray(body)))


def test_sealed_frames_open_in_order_under_their_key_only() -> None:
    key = os.urandom(32)
    seal, unseal = Seal(key), Unseal(key)
    first, second = seal.frame(b"first"), seal.frame(b"second")
    assert _open(unseal, first) == b"first"
    with pytest.raises(LinkError):
        _open(Unseal(key), second)  # out of order: its nonce is the second
    assert _open(unseal, second) == b"second"
    with pytest.raises(LinkError):
        _open(unseal, second)  # replayed
    tampered = bytearray(Seal(key).frame(b"payload")[1])
    tampered[0] ^= 1
    with pytest.raises(LinkError):
        Unseal(key).body(Seal(key).frame(b"payload")[0], tampered)
    with pytest.raises(LinkError):
        _open(Unseal(os.urandom(32)), Seal(key).frame(b"payload"))
    _, body = Seal(key).frame(b"payload")
    with pytest.raises(LinkError):  # the length is authenticated too
        Unseal(key).body(struct.pack(">I", len(body) + 1), bytearray(body))


@given(st.lists(st.binary(max_size=300), max_size=5))
def test_any_bodies_open_as_sealed(bodies: list[bytes]) -> None:
    key = os.urandom(32)
    seal, unseal = Seal(key), Unseal(key)
    assert [_open(unseal, seal.frame(body)) for body in bodies] == bodies


@given(st.binary(max_size=40))
def test_any_sealed_bytes_open_or_are_a_link_error(sealed: bytes) -> None:
    """Short of a tag, or not sealed under the key: a LinkError, never another exception."""
    with pytest.raises(LinkError):
        Unseal(os.urandom(32)).body(struct.pack(">I", len(sealed)), bytearray(sealed))


def test_every_connection_has_keys_of_its_own() -> None:
    secret = new_link_secret()
    a, b = os.urandom(SALT_BYTES), os.urandom(SALT_BYTES)
    keys = connection_keys(secret, a, b)
    assert keys == connection_keys(secret, a, b)
    assert keys[0] != keys[1], "one key per direction"
    assert keys != connection_keys(secret, a, os.urandom(SALT_BYTES))
    assert keys != connection_keys(new_link_secret(), a, b)
    assert connection_keys(LinkSecret(bytes(16), b""), a, b) == (None, None)


def test_frames_in_the_clear_are_the_bodies() -> None:
    header, body = Seal(None).frame(b"plain")
    assert header == struct.pack(">I", 5) and body == b"plain"


@given(
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    st.integers(0, (1 << 64) - 1),
    st.integers(0, (1 << 64) - 1),
    st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)),
)
def test_a_get_reads_back_as_sent(chunk_id: str, offset: int, length: int, rid: str | None) -> None:
    get = Get(chunk_id, offset, length, rid)
    assert decode(encode_get(get)) == get


@given(
    st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
    st.integers(0, (1 << 64) - 1),
    st.one_of(st.none(), st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)),
)
def test_a_put_reads_back_as_sent(chunk_id: str, expected: int, rid: str | None) -> None:
    put = Put(chunk_id, expected, rid)
    assert decode(encode_put(put)) == put


def test_block_heads_errors_stored_and_ends_read_back_as_sent() -> None:
    head = BlockHead(1 << 40, 0xFFFFFFFF, True)
    assert decode(encode_block_head(head)) == head
    error = Error(Failure.DATA_LOSS, "block 3 fails its CRC")
    assert decode(encode_error(error)) == error
    stored = Stored(1 << 40, 3)
    assert decode(encode_stored(stored)) == stored
    assert decode(encode_end()) is None


@given(st.binary(max_size=120))
def test_any_bytes_are_a_message_or_a_link_error(body: bytes) -> None:
    with contextlib.suppress(LinkError):
        decode(body)


# ---- a node's server and a gateway's client over loopback ----------------------------------


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, secure: bool, max_connections: int = 16, capacity_bytes: int | None = None
) -> AsyncIterator[tuple[ChunkStore, DataLinkServer, int, str]]:
    async with await ChunkStore.open(tmp_path / "node", capacity_bytes=capacity_bytes) as store:
        chunk_id = new_id()
        writer = await store.open_writer(chunk_id, sum(map(len, BLOCKS)))
        async with writer:
            for block in BLOCKS:
                await writer.write_block(block, crc32c.crc32c(block))
            await writer.commit()
        server = DataLinkServer(store, secure, max_connections, max_frame_bytes=1 << 20)
        port = await server.start("127.0.0.1", 0)
        try:
            yield store, server, port, chunk_id
        finally:
            await server.close()


def client_of(server: DataLinkServer, port: int, asked: list[int] | None = None) -> DataLink:
    async def ask() -> LinkOffer:
        if asked is not None:
            asked.append(1)
        return LinkOffer(port, server.open_link(), takes_puts=True)

    return DataLink("ab" * 16, "127.0.0.1", ask, max_frame_bytes=1 << 20)


async def read_all(link: DataLink, chunk_id: str, offset: int = 0, length: int = 0) -> list[bytes]:
    return [bytes(data) async for _, data in link.read(chunk_id, offset, length, None, 5.0)]


@pytest.mark.parametrize("secure", [True, False], ids=["sealed", "clear"])
async def test_a_chunk_reads_back_block_by_block(tmp_path: Path, secure: bool) -> None:
    async with serving(tmp_path, secure) as (_, server, port, chunk_id):
        link = client_of(server, port)
        assert await read_all(link, chunk_id) == BLOCKS
        # A range of the last block only, then all again on the same (reused) connection.
        assert await read_all(link, chunk_id, 140_000, 1234) == BLOCKS[2:]
        heads = [head async for head, _ in link.read(chunk_id, 0, 0, "req-1", 5.0)]
        assert [h.offset for h in heads] == [0, 70_000, 140_000]
        assert all(h.whole_block for h in heads)
        assert [h.crc32c for h in heads] == [crc32c.crc32c(b) for b in BLOCKS]
        link.forget()


async def test_errors_come_back_as_core_errors_and_keep_the_connection(tmp_path: Path) -> None:
    async with serving(tmp_path, True) as (_, server, port, chunk_id):
        link = client_of(server, port)
        with pytest.raises(ChunkNotFound):
            await read_all(link, new_id())
        with pytest.raises(InvalidRequest):
            await read_all(link, chunk_id, 10**9, 5)
        assert await read_all(link, chunk_id) == BLOCKS
        link.forget()


async def test_a_read_given_up_half_way_leaves_the_next_one_whole(tmp_path: Path) -> None:
    async with serving(tmp_path, True) as (_, server, port, chunk_id):
        link = client_of(server, port)
        blocks = link.read(chunk_id, 0, 0, None, 5.0)
        await anext(blocks)
        await blocks.aclose()
        assert await read_all(link, chunk_id) == BLOCKS
        link.forget()


async def test_a_restarted_node_is_asked_for_a_new_link(tmp_path: Path) -> None:
    async with serving(tmp_path, True) as (_, server, port, chunk_id):
        asked: list[int] = []
        link = client_of(server, port, asked)
        assert await read_all(link, chunk_id) == BLOCKS
        link.forget()
        # A secret the node no longer knows:
        link._link = LinkOffer(port, new_link_secret(), takes_puts=True)
        assert await read_all(link, chunk_id) == BLOCKS
        assert len(asked) == 2
        link.forget()


async def frame_from(reader: asyncio.StreamReader) -> bytes:
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    return await reader.readexactly(length)


async def test_a_stranger_gets_no_byte_of_a_chunk(tmp_path: Path) -> None:
    async with serving(tmp_path, True) as (_, server, port, chunk_id):
        # An id the node never gave out: refused, then closed.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(Seal(None).frame(hello(os.urandom(16), os.urandom(32)))))
        assert await frame_from(reader) == REFUSE
        assert await reader.read() == b""
        writer.close()
        # A real id (seen on the wire) without its key: the GET does not open, and the
        # connection ends with no block sent.
        secret = server.open_link()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(Seal(None).frame(hello(secret.link_id, os.urandom(32)))))
        reply = await frame_from(reader)
        assert reply[:1] == ACCEPT
        forged = Seal(os.urandom(32)).frame(encode_get(Get(chunk_id, 0, 0, None)))
        writer.write(b"".join(forged))
        assert await reader.read() == b""
        writer.close()
        # In the clear, on a sealed node: refused.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"".join(Seal(None).frame(hello(bytes(16), os.urandom(32)))))
        assert await frame_from(reader) == REFUSE
        writer.close()


async def test_connections_past_the_limit_are_closed(tmp_path: Path) -> None:
    async with serving(tmp_path, True, max_connections=1) as (_, server, port, chunk_id):
        link = client_of(server, port)
        blocks = link.read(chunk_id, 0, 0, None, 5.0)
        await anext(blocks)  # holds the one connection
        with pytest.raises(NodeUnavailable):
            await read_all(client_of(server, port), chunk_id)
        await blocks.aclose()
        link.forget()


async def test_a_node_that_never_answers_costs_one_deadline(tmp_path: Path) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def ask() -> LinkOffer:
        return LinkOffer(port, new_link_secret(), takes_puts=True)

    link = DataLink("ab" * 16, "127.0.0.1", ask, max_frame_bytes=1 << 20)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await read_all_with_timeout(link, new_id(), 0.3)
    assert loop.time() - started < 2.0
    server.close()
    await server.wait_closed()


async def read_all_with_timeout(link: DataLink, chunk_id: str, timeout_s: float) -> None:
    async for _ in link.read(chunk_id, 0, 0, None, timeout_s):
        pass


async def test_a_frame_over_the_limit_ends_the_connection(tmp_path: Path) -> None:
    async def oversized(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await frame_from(reader)
        writer.write(b"".join(Seal(None).frame(ACCEPT + bytes(SALT_BYTES))))
        await frame_from(reader)
        writer.write(struct.pack(">I", 1 << 30))
        await writer.drain()
        await reader.read()

    server = await asyncio.start_server(oversized, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def ask() -> LinkOffer:
        return LinkOffer(port, LinkSecret(bytes(16), b""), takes_puts=True)

    link = DataLink("ab" * 16, "127.0.0.1", ask, max_frame_bytes=1 << 20)
    with pytest.raises(NodeUnavailable):
        await read_all(link, new_id())
    server.close()
    await server.wait_closed()


# ---- writes ------------------------------------------------------------------------------


async def write(
    link: DataLink, chunk_id: str, blocks: list[bytes], crcs: list[int] | None = None
) -> Stored:
    upload = await link.put(chunk_id, sum(map(len, blocks)), "req-2", 5.0, 5.0)
    try:
        for index, block in enumerate(blocks):
            await upload.send(block, crc32c.crc32c(block) if crcs is None else crcs[index])
        return await upload.finish()
    except BaseException:
        upload.cancel()
        raise


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not within 5 s")


@pytest.mark.parametrize("secure", [True, False], ids=["sealed", "clear"])
async def test_a_chunk_written_over_the_link_reads_back(tmp_path: Path, secure: bool) -> None:
    async with serving(tmp_path, secure) as (store, server, port, _):
        link = client_of(server, port)
        chunk_id = new_id()
        stored = await write(link, chunk_id, BLOCKS)
        assert stored == Stored(sum(map(len, BLOCKS)), len(BLOCKS))
        # The same connection, back in the pool, carries the read and another write.
        assert await read_all(link, chunk_id) == BLOCKS
        assert (await write(link, new_id(), BLOCKS[:1])).block_count == 1
        assert len(link._idle) == 1
        assert store.chunk_count == 3
        link.forget()


async def test_a_block_failing_its_crc_stores_nothing(tmp_path: Path) -> None:
    async with serving(tmp_path, True) as (store, server, port, _):
        link = client_of(server, port)
        used = store.used_bytes
        chunk_id = new_id()
        crcs = [crc32c.crc32c(b) for b in BLOCKS]
        crcs[1] ^= 1
        with pytest.raises(DataLoss):
            await write(link, chunk_id, BLOCKS, crcs)
        with pytest.raises(ChunkNotFound):
            await read_all(link, chunk_id)
        await wait_until(lambda: store.ledger.reserved_bytes == 0)
        assert store.used_bytes == used
        assert not list((tmp_path / "node").rglob("*.tmp"))
        link.forget()


async def test_a_write_refused_for_room_or_an_existing_chunk_says_why(tmp_path: Path) -> None:
    async with serving(tmp_path, True, capacity_bytes=200_000) as (_, server, port, chunk_id):
        link = client_of(server, port)
        with pytest.raises(AlreadyExists):
            await write(link, chunk_id, BLOCKS)
        with pytest.raises(InsufficientStorage):
            await write(link, new_id(), [bytes(70_000)] * 4)
        assert await read_all(link, chunk_id) == BLOCKS
        link.forget()


async def test_a_write_cancelled_part_way_leaves_nothing(tmp_path: Path) -> None:
    async with serving(tmp_path, True) as (store, server, port, _):
        link = client_of(server, port)
        chunk_id = new_id()
        upload = await link.put(chunk_id, sum(map(len, BLOCKS)), None, 5.0, 5.0)
        await upload.send(BLOCKS[0], crc32c.crc32c(BLOCKS[0]))
        await wait_until(lambda: store.ledger.reserved_bytes > 0)
        upload.cancel()
        await wait_until(lambda: store.ledger.reserved_bytes == 0)
        with pytest.raises(ChunkNotFound):
            await read_all(link, chunk_id)
        assert not list((tmp_path / "node").rglob("*.tmp"))
        link.forget()


class _Transport:
    """Just enough of a transport to drive a FrameConnection by hand."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def writelines(self, parts: list[bytes | bytearray | memoryview]) -> None:
        for part in parts:
            self.written += part

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def set_write_buffer_limits(self, high: int, low: int) -> None:
        pass

    def get_extra_info(self, name: str) -> None:
        return None


def fed(*frames: bytes) -> tuple[FrameConnection, _Transport]:
    """A connection that has already received these frames (in the clear), all at once."""
    connection, transport = FrameConnection(1 << 20), _Transport()
    connection.connection_made(transport)  # type: ignore[arg-type]
    data = memoryview(b"".join(b"".join(Seal(None).frame(f)) for f in frames))
    while data:
        buffer = connection.get_buffer(-1)
        n = min(len(buffer), len(data))
        buffer[:n] = data[:n]
        connection.buffer_updated(n)
        data = data[n:]
    return connection, transport


async def test_a_request_sent_ahead_of_the_accept_is_never_served() -> None:
    secret = new_link_secret()
    get = encode_get(Get(new_id(), 0, 0, None))
    connection, transport = fed(hello(secret.link_id, os.urandom(32)), get)
    with pytest.raises(LinkError, match="ahead of the handshake"):
        await answer_hello(connection, lambda _: secret, 1 << 20)
    assert transport.written == b""
    # The hello alone is accepted.
    connection, transport = fed(hello(secret.link_id, os.urandom(32)))
    assert await answer_hello(connection, lambda _: secret, 1 << 20) is not None
    assert transport.written[4:5] == ACCEPT


async def test_blocks_sent_ahead_of_the_accept_are_never_read() -> None:
    head = encode_block_head(BlockHead(0, 0, True))
    connection, _ = fed(ACCEPT + bytes(SALT_BYTES), head, b"forged", encode_end())
    with pytest.raises(LinkError, match="ahead of the handshake"):
        await say_hello(connection, new_link_secret())
    connection, _ = fed(ACCEPT + bytes(SALT_BYTES))
    assert await say_hello(connection, new_link_secret()) is not None


def test_frames_written_together_reach_the_transport_in_one_call() -> None:
    """A block head and its block leave in one writelines (one writev under uvloop), in
    order, not as four writes the peer then reads one by one."""
    calls: list[list[bytes]] = []

    class Recording(_Transport):
        def writelines(self, parts: list[bytes | bytearray | memoryview]) -> None:
            calls.append([bytes(part) for part in parts])
            super().writelines(parts)

    connection, transport = FrameConnection(1 << 20), Recording()
    connection.connection_made(transport)  # type: ignore[arg-type]
    seal = Seal(None)
    head = encode_block_head(BlockHead(0, 7, True))
    connection.write(seal.frame(head), seal.frame(b"block"))
    assert calls == [[struct.pack(">I", len(head)), head, struct.pack(">I", 5), b"block"]]
