"""Stripe codecs for each redundancy policy.

Every codec turns one stripe (1 byte up to the stripe size) into ``total_shards`` blocks, and
rebuilds the stripe from any ``needed_to_read`` of them. Blocks are opaque to callers: they are
stored and checksummed as they come. Reed-Solomon uses ISA-L's Cauchy matrices through pyeclib,
which decode for every K and M (Vandermonde matrices do not always).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Protocol

from pyeclib.ec_iface import ECDriver

from diststorage.core.errors import DataLoss
from diststorage.core.policy import RedundancyPolicy


class Codec(Protocol):
    policy: RedundancyPolicy

    def encode(self, stripe: bytes) -> list[bytes]:
        """Returns exactly ``policy.total_shards`` blocks; block i goes to shard i."""
        ...

    def block_size(self, stripe_length: int) -> int:
        """Length of every block ``encode`` makes from a stripe of this length."""
        ...

    def decode(self, blocks: Mapping[int, bytes], stripe_length: int) -> bytes:
        """Rebuilds the stripe from verified blocks keyed by shard index.

        Raises DataLoss when fewer than ``policy.needed_to_read`` blocks are given.
        """
        ...


def _require(blocks: Mapping[int, bytes], needed: int) -> None:
    if len(blocks) < needed:
        raise DataLoss(f"stripe needs {needed} shards, only {len(blocks)} are readable")


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

    def decode(self, blocks: Mapping[int, bytes], stripe_length: int) -> bytes:
        _require(blocks, self.policy.data_shards)
        # Data shards first: with all K of them liberasurecode only concatenates.
        ordered = [blocks[index] for index in sorted(blocks)][: self.policy.data_shards]
        stripe: bytes = self._driver.decode(ordered)
        if len(stripe) != stripe_length:
            raise DataLoss(f"decoded {len(stripe)} bytes, expected {stripe_length}")
        return stripe


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

    def decode(self, blocks: Mapping[int, bytes], stripe_length: int) -> bytes:
        count = self.policy.data_shards
        if any(index not in blocks for index in range(count)):
            raise DataLoss("a plain split needs every shard, and one is unreadable")
        return b"".join(blocks[index] for index in range(count))[:stripe_length]


class ReplicaCodec:
    """replicate:N: every shard is the whole stripe."""

    def __init__(self, policy: RedundancyPolicy) -> None:
        assert policy.kind == "replicate"
        self.policy = policy

    def encode(self, stripe: bytes) -> list[bytes]:
        return [stripe] * self.policy.total_shards

    def block_size(self, stripe_length: int) -> int:
        return stripe_length

    def decode(self, blocks: Mapping[int, bytes], stripe_length: int) -> bytes:
        _require(blocks, 1)
        stripe = next(iter(blocks.values()))
        if len(stripe) != stripe_length:
            raise DataLoss(f"replica holds {len(stripe)} bytes, expected {stripe_length}")
        return stripe


@functools.cache
def codec_for(policy: RedundancyPolicy) -> Codec:
    """One codec per policy for the life of the process (an ISA-L driver is costly to set up)."""
    if policy.kind == "replicate":
        return ReplicaCodec(policy)
    if policy.parity_shards == 0:
        return SplitCodec(policy)
    return ReedSolomonCodec(policy)
