"""Which object versions this gateway is reading right now.

A replaced or deleted object's chunks must outlive the downloads that started before the
change, or those downloads would end in the middle. The janitor asks here before deleting and
parks chunks until the last reader of their object is done.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from diststorage.meta import ChunkRef


class ActiveReads:
    def __init__(self) -> None:
        self._readers: Counter[str] = Counter()
        self._waiting: dict[str, list[Callable[[], None]]] = {}
        self._parked: dict[str, set[str]] = {}

    @contextmanager
    def reading(self, object_id: str) -> Iterator[None]:
        self._readers[object_id] += 1
        try:
            yield
        finally:
            self._readers[object_id] -= 1
            if self._readers[object_id] <= 0:
                del self._readers[object_id]
                self._parked.pop(object_id, None)
                for callback in self._waiting.pop(object_id, []):
                    callback()

    def any(self) -> bool:
        """Whether a download is running on this gateway."""
        return bool(self._readers)

    def after_reads(
        self, object_id: str, chunks: Sequence[ChunkRef], callback: Callable[[], None]
    ) -> None:
        """Runs ``callback`` now, or once nobody on this gateway reads the object any more."""
        if self._readers.get(object_id, 0) > 0:
            self._waiting.setdefault(object_id, []).append(callback)
            self._parked.setdefault(object_id, set()).update(c.chunk_id for c in chunks)
        else:
            callback()

    def parks(self, chunk_id: str) -> bool:
        """Whether the chunk waits for a download to finish before it may be deleted."""
        return any(chunk_id in parked for parked in self._parked.values())
