"""Block framing, gateway to node and on the node's disk.

- ``blockwire``: a hand-encoded PutChunk block message is protobuf's encoding, and a message
  damaged on the way is refused by what the node checks (it parses, is a block, matches its
  CRC-32C: ``servicer.PutChunk`` → ``ChunkWriter.write_block``), never stored as other bytes.
- The chunk file (``node/chunkfile.py``): blocks and their trailer read back through the
  node's reader as written, any range of them too, and a damaged or cut file is DataLoss (or,
  where the damage hits no byte served, reads the same), never other bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import crc32c
from google.protobuf.message import DecodeError
from hypothesis import example, given
from hypothesis import strategies as st

from diststorage.core.errors import DataLoss, InvalidRequest
from diststorage.gateway.blockwire import put_block_message
from diststorage.node.chunkfile import encode_trailer, parse_trailer
from diststorage.node.reader import open_reader
from diststorage.proto import storage_pb2 as pb

from .strategies import mutated

T = TypeVar("T")
CHUNK_ID = "ab" * 16
CRCS = st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 0x7F, 0x80, 0xFFFFFFFF]))


def _node_stores(message: bytes) -> bytes | None:
    """What a node stores from one PutChunk stream message after the header: the block's
    bytes, or None when the message is refused."""
    try:
        request = pb.PutChunkRequest.FromString(message)
    except DecodeError:
        return None
    if request.WhichOneof("part") != "block":
        return None  # InvalidRequest: only blocks may follow the header
    if crc32c.crc32c(request.block.data) != request.block.crc32c:
        return None  # DataLoss: the block fails its CRC
    return request.block.data


@given(st.binary(max_size=3000), CRCS)
@example(b"", 0)
@example(b"x" * 16_384, 1)
def test_a_block_message_is_protobufs_encoding(data: bytes, crc: int) -> None:
    message = put_block_message(data, crc)
    parsed = pb.PutChunkRequest.FromString(message)
    assert parsed.WhichOneof("part") == "block"
    assert (parsed.block.data, parsed.block.crc32c) == (data, crc)
    library = pb.PutChunkRequest(block=pb.Block(data=data, crc32c=crc)).SerializeToString()
    assert pb.PutChunkRequest.FromString(library) == parsed


@given(
    st.binary(max_size=300),
    st.integers(0, 10_000),
    st.integers(0, 255),
    st.integers(0, 2),
)
@example(b"abc", 2, 0x7F, 0)
@example(b"\x00\x00\x00", 2, 0x91, 0)  # the data field's tag turned into an unknown field's
def test_a_damaged_block_message_is_never_stored_as_other_bytes_of_its_length(
    data: bytes, at: int, byte: int, how: int
) -> None:
    """Refused, or stored as sent, or stored with another length, which the gateway sees: it
    holds every node's stored size to what it sent (``chunkset.SetOutcome``). Not refused at
    the node itself: a damaged tag can make the block an empty one, whose CRC (0) is the
    default of the missing field (see the second example)."""
    message = put_block_message(data, crc32c.crc32c(data))
    stored = _node_stores(mutated(message, at, byte, how))
    assert stored is None or stored == data or len(stored) != len(data)


def test_a_damaged_tag_can_leave_an_empty_block_that_passes_its_crc() -> None:
    # Why the property above allows another length: protobuf reads the damaged message as a
    # block without data and without a CRC, and crc32c(b"") is the missing field's 0.
    message = bytearray(put_block_message(b"\x00\x00\x00", crc32c.crc32c(b"\x00\x00\x00")))
    message[2] = 0x91
    assert _node_stores(bytes(message)) == b""


def _run_now(fn: Callable[[], T]) -> asyncio.Future[T]:
    """The node's ``run_io``, run inline: the reader's file I/O without a thread pool."""
    future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
    try:
        future.set_result(fn())
    except Exception as error:
        future.set_exception(error)
    return future


def _chunk_file(blocks: list[bytes]) -> bytes:
    trailer = encode_trailer([(len(block), crc32c.crc32c(block)) for block in blocks])
    return b"".join(blocks) + trailer


async def _read(path: Path, offset: int = 0, length: int = 0) -> bytes:
    async with await open_reader(CHUNK_ID, path, _run_now) as reader:
        return b"".join([piece.data async for piece in reader.read(offset, length)])


def _read_file(content: bytes, offset: int = 0, length: int = 0) -> bytes:
    with tempfile.TemporaryDirectory(prefix="chunkfile-") as folder:
        path = Path(folder) / CHUNK_ID
        path.write_bytes(content)
        return asyncio.run(_read(path, offset, length))


BLOCKS = st.lists(st.binary(max_size=200), max_size=6)


@given(BLOCKS, st.integers(0, 2000), st.integers(0, 2000))
def test_a_chunk_file_reads_back_as_written_in_any_range(
    blocks: list[bytes], offset: int, length: int
) -> None:
    data = b"".join(blocks)
    assert _read_file(_chunk_file(blocks)) == data
    try:
        selected = _read_file(_chunk_file(blocks), offset, length)
    except InvalidRequest:
        assert offset > len(data) or offset + length > len(data)
        return
    assert selected == data[offset : offset + length if length else len(data)]


@given(BLOCKS.filter(any), st.integers(0, 10_000), st.integers(0, 255), st.integers(0, 3))
@example([b"a"], 0, ord("b"), 0)
@example([b"abc", b"de"], 10_000, 0, 2)
def test_a_damaged_or_cut_chunk_file_is_data_loss_never_other_bytes(
    blocks: list[bytes], at: int, byte: int, how: int
) -> None:
    content = _chunk_file(blocks)
    damaged = content[: at % len(content)] if how == 3 else mutated(content, at, byte, how)
    if damaged == content:
        return
    with contextlib.suppress(DataLoss):
        assert _read_file(damaged) == b"".join(blocks)


@given(st.binary(max_size=200), st.integers(0, 2**64))
@example(b"\x00" * 12, 12)
@example(b"\xff\xff\xff\xffDSCHUNK1", 2**40)
def test_any_trailer_is_an_index_that_adds_up_or_data_loss(trailer: bytes, file_size: int) -> None:
    try:
        index = parse_trailer(trailer, file_size)
    except DataLoss:
        return
    assert index.data_bytes + len(trailer) == file_size
    assert sum(block.length for block in index.blocks) == index.data_bytes
