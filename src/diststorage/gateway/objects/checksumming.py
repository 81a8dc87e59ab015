"""A body that computes a flexible checksum as it is read: the checksum of a part that came
without one (a copied part), for an upload created with an algorithm."""

from __future__ import annotations

import asyncio

from diststorage.gateway.objects.ports import ByteSource, ChecksumSource
from diststorage.meta import StoredChecksum
from diststorage.s3auth import Checksum, new_checksum, parse_algorithm

# Below this, hashing on the event loop is cheaper than a hop to a thread.
INLINE_HASH_BYTES = 256 * 1024


class ChecksummingBody:
    """A ByteSource and its ChecksumSource: the checksum (FULL_OBJECT, base64) of every byte
    handed out, complete once the body has been read to its end."""

    def __init__(self, body: ByteSource, algorithm: str) -> None:
        self._body = body
        self._algorithm = parse_algorithm(algorithm)
        self._checksum: Checksum = new_checksum(self._algorithm)

    async def read_up_to(self, size: int) -> bytes:
        data = await self._body.read_up_to(size)
        if len(data) < INLINE_HASH_BYTES:
            self._checksum.update(data)
        else:
            await asyncio.get_running_loop().run_in_executor(None, self._checksum.update, data)
        return data

    def stored_checksum(self) -> StoredChecksum:
        return StoredChecksum(self._algorithm.value, "FULL_OBJECT", self._checksum.b64())


def checksumming_body(algorithm: str, body: ByteSource) -> tuple[ByteSource, ChecksumSource]:
    """A ``BodyWrapper``."""
    wrapped = ChecksummingBody(body, algorithm)
    return wrapped, wrapped
