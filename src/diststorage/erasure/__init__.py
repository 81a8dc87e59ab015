"""Codecs that turn a stripe into shards and back. Pure: no I/O, no event loop."""

from diststorage.erasure.codecs import (
    Block,
    Codec,
    ReedSolomonCodec,
    ReplicaCodec,
    SplitCodec,
    codec_for,
)

__all__ = ["Block", "Codec", "ReedSolomonCodec", "ReplicaCodec", "SplitCodec", "codec_for"]
