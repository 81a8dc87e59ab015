import itertools
import os

import pytest

from diststorage.core.errors import DataLoss
from diststorage.core.policy import parse_policy
from diststorage.erasure import codec_for

SIZES = [1, 2, 5, 6, 7, 1023, 4096, 65_537, (1 << 20) + 3]


@pytest.mark.parametrize("spec", ["ec:4+2", "ec:2+1", "ec:6+0", "ec:1+0", "replicate:3", "ec:10+4"])
@pytest.mark.parametrize("size", SIZES)
def test_every_survivable_loss_decodes(spec: str, size: int) -> None:
    codec = codec_for(parse_policy(spec))
    stripe = os.urandom(size)
    blocks = codec.encode(stripe)
    policy = codec.policy
    assert len(blocks) == policy.total_shards
    assert all(len(b) == codec.block_size(size) for b in blocks)
    lost_options = list(itertools.combinations(range(policy.total_shards), policy.parity_shards))
    for lost in lost_options[:20]:
        kept = {i: b for i, b in enumerate(blocks) if i not in lost}
        assert b"".join(codec.decode(kept, size)) == stripe
        # Blocks as received: views into larger messages.
        framed = {i: memoryview(b"head" + b + b"tail")[4:-4] for i, b in kept.items()}
        assert b"".join(codec.decode(framed, size)) == stripe


@pytest.mark.parametrize("spec", ["ec:4+2", "ec:3+2", "ec:6+0", "replicate:2"])
@pytest.mark.parametrize("size", SIZES)
def test_a_stripe_read_from_every_data_shard_is_views_into_its_blocks(spec: str, size: int) -> None:
    """No copy on a healthy read: each piece is a view into the block it came in."""
    codec = codec_for(parse_policy(spec))
    stripe = os.urandom(size)
    blocks = codec.encode(stripe)
    data = {i: blocks[i] for i in range(codec.policy.needed_to_read)}
    pieces = codec.decode(data, size)
    assert b"".join(pieces) == stripe
    assert all(any(piece.obj is block for block in blocks) for piece in pieces)


def test_a_block_of_another_stripe_length_is_data_loss() -> None:
    codec = codec_for(parse_policy("ec:4+2"))
    blocks = codec.encode(b"x" * 5000)
    with pytest.raises(DataLoss):
        codec.decode(dict(enumerate(blocks[:4])), 4999)


@pytest.mark.parametrize("spec", ["ec:4+2", "ec:6+0", "replicate:3"])
def test_one_loss_too_many_is_data_loss(spec: str) -> None:
    codec = codec_for(parse_policy(spec))
    blocks = codec.encode(b"x" * 1000)
    kept = dict(list(enumerate(blocks))[: codec.policy.needed_to_read - 1])
    if codec.policy.parity_shards == 0:
        kept = dict(list(enumerate(blocks))[1:])
    with pytest.raises(DataLoss):
        codec.decode(kept, 1000)
