"""Stripe codecs for each redundancy policy.

Every codec turns one stripe (1 byte up to the stripe size) into ``total_shards`` blocks, and
rebuilds the stripe from any ``needed_to_read`` of them. Blocks are opaque to callers: they are
stored and checksummed as they come. Reed-Solomon uses ISA-L's Cauchy matrices through pyeclib,
which decode for every K and M (Vandermonde matrices do not always).

A rebuilt stripe comes back as pieces: views into the blocks wherever the stripe's bytes lie
in them as they are (every data shard read), so that a healthy read copies nothing; only a
stripe rebuilt from parity is computed into a buffer of its own.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Mapping
from typing import Protocol

from pyeclib.ec_iface import ECDriver

from diststorage.core.errors import DataLoss
from diststorage.core.policy import RedundancyPolicy

Block = bytes | memoryview
"""A block as received: its bytes, or a view into the message that brought them."""


class Codec(Protocol):
    policy: RedundancyPolicy

    def encode(self, stripe: bytes) -> list[bytes]:
        """Returns exactly ``policy.total_shards`` blocks; block i goes to shard i."""
        ...

    def block_size(self, stripe_length: int) -> int:
        """Length of every block ``encode`` makes from a stripe of this length."""
        ...

    def decode(self, blocks: Mapping[int, Block], stripe_length: int) -> list[memoryview]:
        """Rebuilds the stripe from verified blocks keyed by shard index: its bytes in order,
        in one or more pieces (views into the blocks where it can).

        Raises DataLoss when fewer than ``policy.needed_to_read`` blocks are given.
        """
        ...


def _require(blocks: Mapping[int, Block], needed: int) -> None:
    if len(blocks) < needed:
        raise DataLoss(f"stripe needs {needed} shards, only {len(blocks)} are readable")


def _cut(pieces: list[memoryview], length: int) -> list[memoryview]:
    """The first ``length`` bytes of the pieces laid end to end (the rest is padding)."""
    out: list[memoryview] = []
    for piece in pieces:
        if length <= 0:
            break
        out.append(piece[:length] if len(piece) > length else piece)
        length -= len(out[-1])
    if length > 0:
        raise DataLoss(f"the blocks hold {length} bytes too few for the stripe")
    return out


# liberasurecode's fragment header: the payload follows it; ``orig_data_size`` (the stripe's
# length) is a little-endian u64 at byte 12.
FRAGMENT_HEADER_BYTES = 80
_ORIG_DATA_SIZE = struct.Struct("<Q")
_ORIG_DATA_SIZE_AT = 12


class ReedSolomonCodec:
    """Systematic Reed-Solomon ec:K+M, M >= 1."""

    def __init__(self, policy: RedundancyPolicy) -> None:
        assert policy.kind == "ec" and policy.parity_shards >= 1
        self.policy = policy
        self._driver = ECDriver(
            k=policy.data_shards, m=policy.parity_shards, ec_type="isa_l_rs_cauchy"
        )

    def encode(self, stripe: bytes) -> list[bytes]:
        return list(self._driver.encode(stripe))

    def block_size(self, stripe_length: int) -> int:
        return int(self._driver.get_segment_info(stripe_length, stripe_length)["fragment_size"])

    def decode(self, blocks: Mapping[int, Block], stripe_length: int) -> list[memoryview]:
        _require(blocks, self.policy.data_shards)
        data_shards = range(self.policy.data_shards)
        if all(index in blocks for index in data_shards):
            # Systematic: the data shards' payloads are the stripe, cut into K and padded.
            return self._payloads([blocks[index] for index in data_shards], stripe_length)
        ordered = [bytes(blocks[index]) for index in sorted(blocks)][: self.policy.data_shards]
        stripe: bytes = self._driver.decode(ordered)
        if len(stripe) != stripe_length:
            raise DataLoss(f"decoded {len(stripe)} bytes, expected {stripe_length}")
        return [memoryview(stripe)]

    @staticmethod
    def _payloads(fragments: list[Block], stripe_length: int) -> list[memoryview]:
        for fragment in fragments:
            if len(fragment) <= FRAGMENT_HEADER_BYTES:
                raise DataLoss(f"a block of {len(fragment)} bytes holds no payload")
            stored = _ORIG_DATA_SIZE.unpack_from(fragment, _ORIG_DATA_SIZE_AT)[0]
            if stored != stripe_length:
                raise DataLoss(f"a block of a {stored}-byte stripe, expected {stripe_length}")
        payloads = [memoryview(fragment)[FRAGMENT_HEADER_BYTES:] for fragment in fragments]
        return _cut(payloads, stripe_length)


class SplitCodec:
    """ec:K+0: the stripe cut into K equal slices, the last padded with zeros."""

    def __init__(self, policy: RedundancyPolicy) -> None:
        assert policy.kind == "ec" and policy.parity_shards == 0
        self.policy = policy

    def encode(self, stripe: bytes) -> list[bytes]:
        count = self.policy.data_shards
        block_size = -(-len(stripe) // count)
        padded = stripe.ljust(block_size * count, b"\0")
        view = memoryview(padded)
        return [bytes(view[i * block_size : (i + 1) * block_size]) for i in range(count)]

    def block_size(self, stripe_length: int) -> int:
        return -(-stripe_length // self.policy.data_shards)

    def decode(self, blocks: Mapping[int, Block], stripe_length: int) -> list[memoryview]:
        count = self.policy.data_shards
        if any(index not in blocks for index in range(count)):
            raise DataLoss("a plain split needs every shard, and one is unreadable")
        return _cut([memoryview(blocks[index]) for index in range(count)], stripe_length)


class ReplicaCodec:
    """replicate:N: every shard is the whole stripe."""

    def __init__(self, policy: RedundancyPolicy) -> None:
        assert policy.kind == "replicate"
        self.policy = policy

    def encode(self, stripe: bytes) -> list[bytes]:
        return [stripe] * self.policy.total_shards

    def block_size(self, stripe_length: int) -> int:
        return stripe_length

    def decode(self, blocks: Mapping[int, Block], stripe_length: int) -> list[memoryview]:
        _require(blocks, 1)
        stripe = next(iter(blocks.values()))
        if len(stripe) != stripe_length:
            raise DataLoss(f"replica holds {len(stripe)} bytes, expected {stripe_length}")
        return [memoryview(stripe)]


@functools.cache
def codec_for(policy: RedundancyPolicy) -> Codec:
    """One codec per policy for the life of the process (an ISA-L driver is costly to set up)."""
    if policy.kind == "replicate":
        return ReplicaCodec(policy)
    if policy.parity_shards == 0:
        return SplitCodec(policy)
    return ReedSolomonCodec(policy)
