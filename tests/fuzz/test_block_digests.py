"""The digest list of a chunk: whatever digests go in come out at their block index, a list
that is not whole digests is refused, and an empty list (a chunk from before digests) has no
digest for any block."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from diststorage.meta import block_digest, digest_at, pack_digests
from diststorage.meta.digests import BLOCK_DIGEST_BYTES, NO_DIGESTS, digest_count

DIGESTS = st.lists(st.binary(min_size=BLOCK_DIGEST_BYTES, max_size=BLOCK_DIGEST_BYTES))


@given(DIGESTS)
def test_each_digest_comes_back_at_its_block(digests: list[bytes]) -> None:
    packed = pack_digests(digests)
    assert len(packed) == BLOCK_DIGEST_BYTES * len(digests)
    assert digest_count(packed) == len(digests)
    assert [digest_at(packed, i) for i in range(len(digests))] == (digests or [])


@given(DIGESTS.filter(bool), st.integers())
def test_a_block_past_the_list_is_an_index_error(digests: list[bytes], index: int) -> None:
    packed = pack_digests(digests)
    if 0 <= index < len(digests):
        assert digest_at(packed, index) == digests[index]
    else:
        with pytest.raises(IndexError):
            digest_at(packed, index)


@given(st.lists(st.binary(max_size=2 * BLOCK_DIGEST_BYTES), min_size=1))
def test_pieces_that_are_not_whole_digests_are_refused(pieces: list[bytes]) -> None:
    if sum(map(len, pieces)) % BLOCK_DIGEST_BYTES:
        with pytest.raises(ValueError):
            pack_digests(pieces)
        with pytest.raises(ValueError):
            digest_count(b"".join(pieces))
    else:
        assert digest_count(pack_digests(pieces)) * BLOCK_DIGEST_BYTES == sum(map(len, pieces))


@given(st.integers(min_value=0))
def test_a_chunk_without_digests_has_none_for_any_block(index: int) -> None:
    assert digest_at(NO_DIGESTS, index) is None


@given(st.binary(max_size=4096), st.binary(max_size=4096))
def test_the_digest_is_of_the_bytes_and_their_length(a: bytes, b: bytes) -> None:
    assert len(block_digest(a)) == BLOCK_DIGEST_BYTES
    assert (block_digest(a) == block_digest(b)) == (a == b)
