"""GetChunk and GetChunkOnce answers, framed and read by hand.

A download moves every byte through these messages. Through the protobuf library the node
copies each block into a message and again into its serialized form, and the gateway copies
it once more out of the parsed message. Framed here, the node makes one copy (the small
fields, then the block behind them) and the gateway none: the block it gets is a view into
the bytes gRPC handed over. The framing is protobuf's wire format for ``GetChunkResponse``,
fields in any order and unknown fields skipped, so a generated stub reads what a node sends
and the gateway reads what an older node sends; a unit test holds both equal to the library.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from diststorage.proto import storage_pb2 as pb

_SERVICE = pb.DESCRIPTOR.services_by_name["ChunkService"].full_name
GET_CHUNK_METHOD = f"/{_SERVICE}/GetChunk"
GET_CHUNK_ONCE_METHOD = f"/{_SERVICE}/GetChunkOnce"

_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5
_DATA = pb.GetChunkResponse.DATA_FIELD_NUMBER
_OFFSET = pb.GetChunkResponse.OFFSET_FIELD_NUMBER
_CRC = pb.GetChunkResponse.BLOCK_CRC32C_FIELD_NUMBER
_WHOLE = pb.GetChunkResponse.WHOLE_BLOCK_FIELD_NUMBER
_U32 = struct.Struct("<I")
_MAX_VARINT_BYTES = 10
_U64_MASK = (1 << 64) - 1


class WireError(ValueError):
    """Bytes that are not a GetChunkResponse."""


@dataclass(frozen=True, slots=True)
class ChunkAnswer:
    data: memoryview
    """A view into the received message: no copy of the block is made."""
    offset: int
    block_crc32c: int
    whole_block: bool


def varint(value: int) -> bytes:
    """An unsigned integer in protobuf's base-128 varint encoding."""
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return varint((field << 3) | wire_type)


_OFFSET_KEY = _key(_OFFSET, _VARINT)
_CRC_KEY = _key(_CRC, _FIXED32)
_WHOLE_TRUE = _key(_WHOLE, _VARINT) + b"\x01"
_DATA_KEY = _key(_DATA, _LENGTH)


def encode_answer(data: bytes, offset: int, block_crc32c: int, whole_block: bool) -> bytes:
    """The serialized ``GetChunkResponse``: the small fields first, the block last, so that
    building it copies the block once."""
    head = b"".join(
        (
            _OFFSET_KEY + varint(offset) if offset else b"",
            _CRC_KEY + _U32.pack(block_crc32c),
            _WHOLE_TRUE if whole_block else b"",
            _DATA_KEY,
            varint(len(data)),
        )
    )
    return head + data


def _read_varint(raw: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(position, min(position + _MAX_VARINT_BYTES, len(raw))):
        byte = raw[index]
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            # As the library reads a uint64: a longer varint keeps its low 64 bits.
            return value & _U64_MASK, index + 1
        shift += 7
    raise WireError("a varint runs past the message or past 10 bytes")


def decode_answer(raw: bytes) -> ChunkAnswer:
    """Reads a serialized ``GetChunkResponse`` (the node's framing or the library's).

    Raises WireError for bytes that are not one: a truncated field, an unknown wire type,
    a field of the wrong type.
    """
    view = memoryview(raw)
    data = view[0:0]
    offset = crc = 0
    whole = False
    position, size = 0, len(raw)
    while position < size:
        key, position = _read_varint(raw, position)
        field, wire_type = key >> 3, key & 7
        if field == 0:
            raise WireError("field number 0")
        if wire_type == _VARINT:
            value, position = _read_varint(raw, position)
            if field == _OFFSET:
                offset = value
            elif field == _WHOLE:
                whole = value != 0
            elif field in (_DATA, _CRC):
                raise WireError(f"field {field} sent as a varint")
        elif wire_type == _LENGTH:
            length, position = _read_varint(raw, position)
            end = position + length
            if end > size:
                raise WireError("a field runs past the end of the message")
            if field == _DATA:
                data = view[position:end]
            elif field in (_OFFSET, _CRC, _WHOLE):
                raise WireError(f"field {field} sent length-delimited")
            position = end
        elif wire_type == _FIXED32:
            if position + 4 > size:
                raise WireError("a fixed32 runs past the end of the message")
            if field == _CRC:
                crc = _U32.unpack_from(raw, position)[0]
            elif field in (_DATA, _OFFSET, _WHOLE):
                raise WireError(f"field {field} sent as a fixed32")
            position += 4
        elif wire_type == _FIXED64:
            if position + 8 > size:
                raise WireError("a fixed64 runs past the end of the message")
            if field in (_DATA, _OFFSET, _CRC, _WHOLE):
                raise WireError(f"field {field} sent as a fixed64")
            position += 8
        else:
            raise WireError(f"wire type {wire_type} of field {field}")
    return ChunkAnswer(data, offset, crc, whole)
