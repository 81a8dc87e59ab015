"""Expiry of multipart uploads, on the leader: open uploads idle longer than
``multipart_expiry_s`` are aborted (their parts' chunks deleted), and the rows of finished
uploads, kept so that a retried Complete or Abort gets the same answer, are forgotten a day
after they finished.

Idle time, not age: every part's commit touches its upload, so an upload that goes on for
days is never cut off while parts keep coming. Parts cut off mid-write by a crashed gateway
are not this worker's: they stay pending rows and fall to the garbage collector's grace.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta

from diststorage.core.clock import SYSTEM_CLOCK, Clock, utc_now
from diststorage.core.worker import BUSY, Figures, Step, WorkerState
from diststorage.meta import ChunkRef, MultipartStore

log = logging.getLogger(__name__)

# How long a finished upload's row answers a retried Complete or Abort.
FINISHED_KEPT_S = 24 * 3600.0
UPLOADS_PER_STEP = 100
IDLE_INTERVAL_S = 60.0


class MultipartExpiry:
    name = "multipart"

    def __init__(
        self,
        expiry_s: float,
        multipart: MultipartStore,
        delete_soon: Callable[[Sequence[ChunkRef]], None],
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        """``expiry_s`` 0 aborts nothing (finished rows are still forgotten);
        ``delete_soon`` deletes chunks already queued as garbage (``Janitor.delete_soon``)."""
        self._expiry_s = expiry_s
        self._multipart = multipart
        self._delete_soon = delete_soon
        self._clock = clock
        self.uploads_expired = 0
        self.uploads_forgotten = 0

    def status(self) -> Figures:
        return {
            "uploads_expired": self.uploads_expired,
            "uploads_forgotten": self.uploads_forgotten,
        }

    async def work(self) -> Step:
        now = utc_now(self._clock)
        expired = []
        if self._expiry_s > 0:
            cutoff = now - timedelta(seconds=self._expiry_s)
            expired = await self._multipart.expire_idle(cutoff, UPLOADS_PER_STEP)
        for upload in expired:
            log.info(
                "multipart upload %s idle for %.0f s: aborted, %d chunks to delete",
                upload.upload_id,
                self._expiry_s,
                len(upload.chunks),
            )
            self._delete_soon(upload.chunks)
        self.uploads_expired += len(expired)
        forgotten = await self._multipart.purge_finished(
            now - timedelta(seconds=FINISHED_KEPT_S), UPLOADS_PER_STEP
        )
        self.uploads_forgotten += forgotten
        if len(expired) == UPLOADS_PER_STEP or forgotten == UPLOADS_PER_STEP:
            return BUSY
        return Step(WorkerState.IDLE, IDLE_INTERVAL_S)

    async def close(self) -> None:
        """Nothing held between units."""
