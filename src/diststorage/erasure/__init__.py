"""Codecs that turn a stripe into shards and back. Pure: no I/O, no event loop."""

from diststorage.erasure.codecs import Codec, ReedSolomonCodec, ReplicaCodec, SplitCodec, codec_for

__all__ = ["Codec", "ReedSolomonCodec", "ReplicaCodec", "SplitCodec", "codec_for"]
