"""Leadership of the background workers: exactly one gateway of a cluster runs repair and
garbage collection, under a lease row in the metadata database.

The holder renews every third of the TTL, writing its workers' figures into the lease row
each time (``published``), so that the other gateways can show the leader's progress. It
counts itself leader only until the moment the lease would lapse without a renewal (on its own
monotonic clock, from before it asked), so a gateway cut off from the database stops working
before another can take over. If the leader dies, another gateway takes the lease within one
TTL plus one renewal interval.

``LeaderLease`` is the lease keeper's worker too: one renewal per unit of work, and on close
the lease is handed back, so that another gateway need not wait out the TTL.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from diststorage.core.clock import Clock
from diststorage.core.errors import DiststorageError
from diststorage.core.worker import Figures, Step, WorkerState
from diststorage.meta import MaintenanceStore

log = logging.getLogger(__name__)

WORKERS_LEASE = "workers"


class LeaderLease:
    name = "lease"

    def __init__(
        self,
        maintenance: MaintenanceStore,
        holder: str,
        ttl_s: float,
        clock: Clock,
        published: Callable[[], Figures] | None = None,
    ) -> None:
        self._maintenance = maintenance
        self.holder = holder
        self._ttl_s = ttl_s
        self._clock = clock
        # What goes into the lease row with each renewal, for the other gateways to show.
        self._published = published
        self._valid_until = float("-inf")

    @property
    def is_leader(self) -> bool:
        return self._clock.monotonic() < self._valid_until

    async def renew(self) -> bool:
        """One attempt to take or keep the lease; returns whether this gateway leads now."""
        was_leader = self.is_leader
        asked_at = self._clock.monotonic()
        try:
            figures = None if self._published is None else json.dumps(dict(self._published()))
            expires = await self._maintenance.acquire_lease(
                WORKERS_LEASE, self.holder, self._ttl_s, figures
            )
        except DiststorageError as error:
            log.warning("could not renew the workers' lease: %s", error)
            expires = None
        if expires is not None:
            self._valid_until = asked_at + self._ttl_s
        elif self._valid_until > asked_at:
            # Another gateway holds it: whatever this one believed is over.
            self._valid_until = asked_at
        if self.is_leader != was_leader:
            log.info(
                "this gateway %s the background workers",
                "now runs" if self.is_leader else "no longer runs",
            )
        return self.is_leader

    def status(self) -> Figures:
        return {"leader": int(self.is_leader), "holder": self.holder}

    async def work(self) -> Step:
        """One renewal; the next comes a third of the TTL later. Never raises."""
        await self.renew()
        return Step(WorkerState.IDLE, wait_s=self._ttl_s / 3)

    async def close(self) -> None:
        """Hands the lease back if this gateway holds it (a failure only lets it lapse)."""
        if not self.is_leader:
            return
        self._valid_until = float("-inf")
        try:
            # Shielded: a second cancellation of the shutdown must not leave the lease held
            # for a whole TTL.
            await asyncio.shield(self._maintenance.release_lease(WORKERS_LEASE, self.holder))
        except DiststorageError as error:
            log.info("lease not released (it will lapse): %s", error)
