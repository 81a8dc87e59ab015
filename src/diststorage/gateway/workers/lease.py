"""Leadership of the background workers: exactly one gateway of a cluster runs repair and
garbage collection, under a lease row in the metadata database.

The holder renews every third of the TTL. It counts itself leader only until the moment the
lease would lapse without a renewal (on its own monotonic clock, from before it asked), so a
gateway cut off from the database stops working before another can take over. If the leader
dies, another gateway takes the lease within one TTL plus one renewal interval.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from diststorage.core.errors import DiststorageError
from diststorage.meta import MaintenanceStore

log = logging.getLogger(__name__)

WORKERS_LEASE = "workers"


class LeaderLease:
    def __init__(
        self,
        maintenance: MaintenanceStore,
        holder: str,
        ttl_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._maintenance = maintenance
        self.holder = holder
        self._ttl_s = ttl_s
        self._clock = clock
        self._valid_until = float("-inf")

    @property
    def is_leader(self) -> bool:
        return self._clock() < self._valid_until

    async def renew(self) -> bool:
        """One attempt to take or keep the lease; returns whether this gateway leads now."""
        was_leader = self.is_leader
        asked_at = self._clock()
        try:
            expires = await self._maintenance.acquire_lease(WORKERS_LEASE, self.holder, self._ttl_s)
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

    async def keep(self) -> None:
        """Renews for ever (until cancelled); hands the lease back on the way out."""
        try:
            while True:
                await self.renew()
                await asyncio.sleep(self._ttl_s / 3)
        finally:
            if self.is_leader:
                self._valid_until = float("-inf")
                try:
                    await asyncio.shield(
                        self._maintenance.release_lease(WORKERS_LEASE, self.holder)
                    )
                except DiststorageError as error:
                    log.info("lease not released (it will lapse): %s", error)
