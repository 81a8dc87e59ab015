"""Key shapes and the bulk load of the metadata-scale benchmark, through the store's own API.

Every object goes in as the gateway writes a one-segment ec:4+2 object: ``begin_upload`` with 6
planned chunks, then ``commit_upload`` with the 6 stored chunks (size and one block CRC each).
Object ``n`` always has the same key, so a checkpoint can name existing keys without keeping
them, and the keys spread over a few families so that prefix listings mean something.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from diststorage.core.ids import new_id
from diststorage.meta import MetadataStore, NewObject, PlannedChunk, StoredChunk

NAMESPACE = "default"
POLICY = "ec:4+2"
DATA_SHARDS = 4
SHARDS = 6
NODES = 12
STRIPE_SIZE_BYTES = 4 << 20
SEGMENT_STRIPES = 64
MIN_OBJECT_BYTES = 256 << 10
GATEWAY_ID = "b" * 32
PROGRESS_EVERY_S = 15.0

# Families of keys, one in four objects each; ``n // 4`` numbers the object within its family.
PHOTO_MONTHS = 12
LOG_SERVICES = 8
USERS = 5_000
_CONTENT_TYPES = ("image/jpeg", "application/gzip", "application/zstd", "application/pdf")


def object_key(n: int) -> str:
    """The key of object ``n``; distinct for distinct ``n``, all ASCII (byte order = str order)."""
    family, i = n % 4, n // 4
    if family == 0:
        return f"photos/2026/{i % PHOTO_MONTHS + 1:02d}/IMG_{i:08d}.jpg"
    if family == 1:
        return f"logs/svc-{i % LOG_SERVICES}/2026-11-{i % 30 + 1:02d}/{i:08d}.log.gz"
    if family == 2:
        return f"backups/pg/{i:08d}.tar.zst"
    # Users are scattered (multiplicative hash), so a user's keys arrive far apart in time.
    return f"users/{i * 7_919 % USERS:05d}/docs/{i:08d}.pdf"


def listing_prefixes() -> list[str]:
    """Prefixes whose listing pages the benchmark times: a month, a service, a user, a family."""
    return [
        *(f"photos/2026/{m:02d}/" for m in range(1, PHOTO_MONTHS + 1)),
        *(f"logs/svc-{s}/" for s in range(LOG_SERVICES)),
        "backups/pg/",
        *(f"users/{u:05d}/" for u in range(0, USERS, 500)),
    ]


@dataclass(frozen=True, slots=True)
class LoadStep:
    """One stretch of the bulk load, from ``start`` objects to ``end`` objects."""

    start: int
    end: int
    seconds: float
    concurrency: int

    @property
    def objects_per_s(self) -> float:
        return (self.end - self.start) / self.seconds if self.seconds > 0 else 0.0


class Loader:
    """Adds objects ``loaded, loaded + 1, ...`` with ``concurrency`` uploads in flight."""

    def __init__(self, store: MetadataStore, seed: int, say: Callable[[str], None]) -> None:
        self._store = store
        self._rng = random.Random(seed)
        self._say = say
        self._nodes = [new_id() for _ in range(NODES)]
        self.loaded = 0

    async def load_to(self, target: int, concurrency: int) -> LoadStep:
        start, began = self.loaded, time.perf_counter()
        numbers = iter(range(start, target))
        done = itertools.count(start + 1)
        progress = {"at": began, "count": start}

        async def worker() -> None:
            for n in numbers:
                await self._add(n)
                count = next(done)
                now = time.perf_counter()
                if now - progress["at"] >= PROGRESS_EVERY_S:
                    rate = (count - progress["count"]) / (now - progress["at"])
                    self._say(f"  loaded {count:,} of {target:,} ({rate:,.0f} objects/s)")
                    progress.update(at=now, count=count)

        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, max(1, target - start))):
                group.create_task(worker())
        self.loaded = target
        return LoadStep(start, target, time.perf_counter() - began, concurrency)

    async def _add(self, n: int) -> None:
        object_id = new_id()
        size_bytes = self._rng.randint(MIN_OBJECT_BYTES, STRIPE_SIZE_BYTES)
        chunk_bytes = -(-size_bytes // DATA_SHARDS)
        first_node = n % NODES
        planned = [
            PlannedChunk(new_id(), self._nodes[(first_node + shard) % NODES], 0, shard)
            for shard in range(SHARDS)
        ]
        await self._store.begin_upload(
            NewObject(
                object_id=object_id,
                namespace=NAMESPACE,
                key=object_key(n),
                content_type=_CONTENT_TYPES[n % 4],
                policy=POLICY,
                stripe_size_bytes=STRIPE_SIZE_BYTES,
                segment_stripes=SEGMENT_STRIPES,
                gateway_id=GATEWAY_ID,
            ),
            planned,
        )
        stored = [
            StoredChunk(
                p.chunk_id,
                p.node_id,
                p.segment_index,
                p.shard_index,
                chunk_bytes,
                (zlib.crc32(p.chunk_id.encode()),),
            )
            for p in planned
        ]
        await self._store.commit_upload(object_id, size_bytes, f"{n:032x}", stored, replace=False)
