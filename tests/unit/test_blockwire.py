import os

import pytest

from diststorage.gateway.blockwire import put_block_message, put_header_message
from diststorage.proto import storage_pb2 as pb

# Lengths either side of each varint width (1, 2, 3 and 4 bytes), and a block of a 4 MiB stripe.
SIZES = [1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 1 << 20, (1 << 20) + 80]
CRCS = [1, 0x7F, 0x80, 0xDEADBEEF, 0xFFFFFFFF]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("crc", CRCS)
def test_block_message_is_the_librarys_encoding(size: int, crc: int) -> None:
    data = os.urandom(size)
    expected = pb.PutChunkRequest(block=pb.Block(data=data, crc32c=crc)).SerializeToString()
    assert put_block_message(data, crc) == expected


def test_a_zero_checksum_parses_back_as_zero() -> None:
    # The library leaves a zero field out; ours writes it. Both read back the same.
    message = pb.PutChunkRequest.FromString(put_block_message(b"abc", 0))
    assert message.WhichOneof("part") == "block"
    assert message.block.data == b"abc"
    assert message.block.crc32c == 0


def test_header_message_opens_the_stream() -> None:
    message = pb.PutChunkRequest.FromString(put_header_message("ab" * 16, 12_345))
    assert message.WhichOneof("part") == "header"
    assert message.header.chunk_id == "ab" * 16
    assert message.header.expected_bytes == 12_345
