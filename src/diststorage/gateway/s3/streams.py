"""Read streams that end early: a GET whose client went away, a copy whose write failed.
Closing the stream at once stops its fetches and frees its stripes, rather than leaving them
to wait for the generator's finalizer."""

from __future__ import annotations

from collections.abc import AsyncIterator


async def close_stream(pieces: AsyncIterator[bytes]) -> None:
    close = getattr(pieces, "aclose", None)
    if close is not None:
        await close()
