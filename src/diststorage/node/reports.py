"""Corrupt chunks found by the scrubber, kept until a gateway acknowledges them.

A report goes out in every heartbeat to every gateway until one of them answers that it dealt
with the chunk (read it back, and recorded it for repair or found it whole); from then on the
chunk is never reported again by this process. Both sets are bounded, and both limits only ever
cost a repeat, never a lost report: a chunk that finds the pending set full is not taken in, so
the next scrub pass finds it again; an acknowledgement forgotten to make room makes a later
pass report that chunk a second time, which the gateway records again harmlessly.

Only the event-loop thread touches it, so it needs no lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

log = logging.getLogger(__name__)

MAX_PENDING = 100_000
"""Chunk ids waiting for an acknowledgement (a dying disk must not grow this without limit)."""
MAX_ACKNOWLEDGED = 100_000
"""Acknowledged chunk ids remembered, so that later passes do not report them again."""
MAX_PER_BEAT = 1000
"""Chunk ids in one heartbeat (≈ 33 KiB); the oldest go first, the rest in later beats."""


class CorruptReports:
    def __init__(
        self,
        max_pending: int = MAX_PENDING,
        max_acknowledged: int = MAX_ACKNOWLEDGED,
        max_per_beat: int = MAX_PER_BEAT,
    ) -> None:
        self._max_pending = max_pending
        self._max_acknowledged = max_acknowledged
        self._max_per_beat = max_per_beat
        # Dicts for their insertion order: oldest reports go out first, oldest acks go first.
        self._pending: dict[str, None] = {}
        self._acknowledged: dict[str, None] = {}

    def found(self, chunk_id: str) -> bool:
        """Takes in a corrupt chunk; returns whether it is news (not pending, not acknowledged,
        and there was room). Only news should be counted and logged."""
        if chunk_id in self._pending or chunk_id in self._acknowledged:
            return False
        if len(self._pending) >= self._max_pending:
            log.warning(
                "%d corrupt chunks await a gateway's acknowledgement; chunk %s waits for the "
                "next scrub pass",
                len(self._pending),
                chunk_id,
            )
            return False
        self._pending[chunk_id] = None
        return True

    def pending(self) -> list[str]:
        """The chunk ids to put in the next heartbeat, oldest first, at most max_per_beat."""
        ids: list[str] = []
        for chunk_id in self._pending:
            if len(ids) == self._max_per_beat:
                break
            ids.append(chunk_id)
        return ids

    def acknowledged(self, chunk_ids: Iterable[str]) -> None:
        """Drops what a gateway acknowledged; ids that are not pending are ignored."""
        for chunk_id in chunk_ids:
            if chunk_id not in self._pending:
                continue
            del self._pending[chunk_id]
            self._acknowledged[chunk_id] = None
            if len(self._acknowledged) > self._max_acknowledged:
                del self._acknowledged[next(iter(self._acknowledged))]
