"""PutChunk block messages, encoded by hand.

Building ``PutChunkRequest(block=Block(data=...))`` and serializing it copies a 1 MiB block
several times over (into the message, into the nested message, into the encoder's growing
buffer, into the result): about 5 GiB of allocations per GiB uploaded, and 6 MiB of a
gateway's peak memory. The same bytes framed by hand cost one copy. The framing is
protobuf's wire format for exactly these two messages; a unit test holds it equal to the
library's encoding.
"""

from __future__ import annotations

import struct
from typing import NewType

from diststorage.proto import storage_pb2 as pb
from diststorage.proto.chunkwire import varint

# Field keys: (field number << 3) | wire type; 2 = length-delimited, 5 = 32-bit.
_REQUEST_BLOCK = bytes([(pb.PutChunkRequest.BLOCK_FIELD_NUMBER << 3) | 2])
_BLOCK_DATA = bytes([(pb.Block.DATA_FIELD_NUMBER << 3) | 2])
_BLOCK_CRC32C = bytes([(pb.Block.CRC32C_FIELD_NUMBER << 3) | 5])
_CRC_FIELD_BYTES = len(_BLOCK_CRC32C) + 4

BlockMessage = NewType("BlockMessage", bytes)
"""A serialized ``PutChunkRequest`` carrying one block, ready for the stream."""


def put_block_message(data: bytes, crc32c: int) -> BlockMessage:
    """The serialized ``PutChunkRequest`` carrying one block and its checksum."""
    data_field = _BLOCK_DATA + varint(len(data))
    block_bytes = len(data_field) + len(data) + _CRC_FIELD_BYTES
    crc_field = _BLOCK_CRC32C + struct.pack("<I", crc32c)
    return BlockMessage(
        b"".join((_REQUEST_BLOCK, varint(block_bytes), data_field, data, crc_field))
    )


def put_header_message(chunk_id: str, expected_bytes: int) -> bytes:
    """The serialized ``PutChunkRequest`` that opens a chunk's stream."""
    header = pb.ChunkHeader(chunk_id=chunk_id, expected_bytes=expected_bytes)
    return pb.PutChunkRequest(header=header).SerializeToString()
