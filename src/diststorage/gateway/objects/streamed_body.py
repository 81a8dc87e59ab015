"""An object's bytes as they are read (``ObjectReader.stream``), handed over as a body to
store (a ``ByteSource``): what server-side copies write from, holding no more than the read
pipeline's stripes in flight and one piece; and the one way to end such a stream early."""

from __future__ import annotations

from collections.abc import AsyncIterator

from diststorage.gateway.objects.reader import Piece


class StreamedBody:
    def __init__(self, pieces: AsyncIterator[Piece]) -> None:
        self._pieces = pieces
        self._leftover = memoryview(b"")
        self._ended = False

    async def read_up_to(self, size: int) -> bytes:
        taken: list[bytes | memoryview] = []
        have = 0
        while have < size:
            if not self._leftover:
                if self._ended:
                    break
                piece = await anext(self._pieces, b"")
                if not piece:
                    self._ended = True
                    break
                self._leftover = memoryview(piece)
            part = self._leftover[: size - have]
            self._leftover = self._leftover[len(part) :]
            taken.append(part)
            have += len(part)
        return b"".join(taken)


async def close_stream(pieces: AsyncIterator[Piece]) -> None:
    """Ends a read stream that is left early (a GET whose client went away, a copy whose
    write failed): its fetches stop and its stripes are freed at once, rather than when the
    generator's finalizer runs."""
    close = getattr(pieces, "aclose", None)
    if close is not None:
        await close()
