"""GetChunk answers framed by hand (proto/chunkwire.py) against the protobuf library: what a
node sends parses with the generated code, what the library encodes (an older node) reads
back the same, and no bytes make the reader fail other than with WireError."""

import google.protobuf.message
from hypothesis import given
from hypothesis import strategies as st

from diststorage.proto import storage_pb2 as pb
from diststorage.proto.chunkwire import WireError, decode_answer, encode_answer

answers = st.tuples(
    st.binary(min_size=0, max_size=3000),
    st.integers(min_value=0, max_value=(1 << 64) - 1),
    st.integers(min_value=0, max_value=(1 << 32) - 1),
    st.booleans(),
)


@given(answers)
def test_the_library_reads_what_a_node_frames(answer: tuple[bytes, int, int, bool]) -> None:
    data, offset, crc, whole = answer
    message = pb.GetChunkResponse.FromString(encode_answer(data, offset, crc, whole))
    assert (message.data, message.offset, message.block_crc32c, message.whole_block) == answer


@given(answers)
def test_the_gateway_reads_what_the_library_encodes(answer: tuple[bytes, int, int, bool]) -> None:
    data, offset, crc, whole = answer
    raw = pb.GetChunkResponse(
        data=data, offset=offset, block_crc32c=crc, whole_block=whole
    ).SerializeToString()
    decoded = decode_answer(raw)
    assert (bytes(decoded.data), decoded.offset, decoded.block_crc32c, decoded.whole_block) == (
        answer
    )
    assert bytes(decode_answer(encode_answer(*answer)).data) == data


def test_the_block_is_a_view_into_the_message_not_a_copy() -> None:
    raw = encode_answer(b"x" * 100_000, 7, 9, True)
    assert decode_answer(raw).data.obj is raw


def test_the_empty_message_is_no_block() -> None:
    empty = decode_answer(b"")
    assert (bytes(empty.data), empty.offset, empty.whole_block) == (b"", 0, False)


def test_unknown_fields_are_skipped() -> None:
    known = encode_answer(b"abc", 5, 6, True)
    # Field 9 as a varint, a fixed64, a length-delimited and a fixed32 field.
    unknown = b"\x48\x01" + b"\x49" + bytes(8) + b"\x4a\x02hi" + b"\x4d" + bytes(4)
    decoded = decode_answer(unknown + known)
    assert (bytes(decoded.data), decoded.offset, decoded.block_crc32c) == (b"abc", 5, 6)


@given(st.binary(max_size=200))
def test_any_bytes_read_as_an_answer_or_fail_as_wire_errors(raw: bytes) -> None:
    try:
        decoded = decode_answer(raw)
    except WireError:
        return
    assert len(decoded.data) <= len(raw)
    # What reads as an answer reads the same through the library, where the library reads it.
    try:
        message = pb.GetChunkResponse.FromString(raw)
    except google.protobuf.message.DecodeError:
        return
    assert bytes(decoded.data) == message.data
    assert decoded.offset == message.offset
    assert decoded.whole_block == message.whole_block


def test_truncated_messages_are_wire_errors() -> None:
    raw = encode_answer(b"y" * 300, 1 << 40, 3, True)
    for cut in range(1, len(raw)):
        try:
            decoded = decode_answer(raw[:cut])
        except WireError:
            continue
        # A cut just before the block's field leaves a message without a block, which is
        # valid protobuf; the gateway then refuses a block of the wrong length.
        assert len(decoded.data) == 0
