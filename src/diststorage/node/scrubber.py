"""The background scrubber: re-reads every stored block and checks it against its CRC-32C.

Reads verify a chunk only when someone asks for it; cold data can rot unnoticed until the day
its redundancy is needed. The scrubber walks the store in chunk-id order, one block per unit of
work, at a bounded byte rate, and hands every chunk it finds damaged to ``CorruptReports``,
which heartbeats carry to the gateways for repair. It never deletes or moves a damaged chunk:
reads of it already answer DATA_LOSS, and the gateway deletes it once it is rebuilt elsewhere.

A pass lists the store page by page, resuming after the last id listed, so chunks written
during a pass with higher ids are verified in the same pass and the others in the next one.
Where the pass stands is saved now and then (see scrubstate.py), so a restart resumes it.
"""

from __future__ import annotations

import errno
import logging
from collections import deque
from dataclasses import dataclass
from functools import partial

from diststorage.core.clock import Clock
from diststorage.core.errors import ChunkNotFound, DataLoss
from diststorage.core.ratelimit import TokenBucket
from diststorage.core.worker import BUSY, Figures, Step, WorkerState
from diststorage.node.chunkfile import BlockEntry
from diststorage.node.chunkstore import ChunkStore
from diststorage.node.reader import ChunkReader
from diststorage.node.reports import CorruptReports
from diststorage.node.scrubstate import ScrubState, load_scrub_state, save_scrub_state

log = logging.getLogger(__name__)

PAGE_CHUNKS = 256
"""Chunk ids listed at a time; bounds the memory a pass holds whatever the store's size."""
BURST_S = 1.0
"""The rate limiter lets this many seconds' worth of bytes through at once after a pause."""
SAVE_INTERVAL_S = 30.0
"""How often the position in a pass is saved; a restart repeats at most this much work."""


@dataclass(frozen=True, slots=True)
class ScrubConfig:
    rate_bytes_per_s: int
    interval_s: float
    """Pause between the end of a pass and the start of the next."""
    page_chunks: int = PAGE_CHUNKS

    def __post_init__(self) -> None:
        assert self.rate_bytes_per_s > 0, "a disabled scrubber is not constructed"
        assert self.interval_s >= 0 and self.page_chunks >= 1


@dataclass(frozen=True, slots=True)
class ScrubProgress:
    state: WorkerState
    verified_bytes: int
    """Data bytes whose CRC matched, since the node started."""
    corrupt_found: int
    """Chunks found corrupt and newly reported, since the node started."""
    passes_completed: int
    """Full passes over the store, since the node started."""
    last_pass_finished: float
    """Seconds since the epoch when the last pass ended (also before a restart); 0 if never."""


class Scrubber:
    """A Worker (see core/worker.py): each ``work()`` lists a page, opens a chunk or verifies one
    block. Not safe to call concurrently with itself; ``run_worker`` calls it in a loop.

    ``work()`` raises only operating errors (the store's OSError other than EIO, RuntimeError
    once the store is closed); a damaged or deleted chunk is an outcome, not an error. If it
    raises or is cancelled while a chunk is open, that chunk is closed and skipped for this
    pass. ``close()`` must run before the store closes.
    """

    name = "scrubber"

    def __init__(
        self,
        store: ChunkStore,
        reports: CorruptReports,
        config: ScrubConfig,
        clock: Clock,
    ) -> None:
        self._store = store
        self._reports = reports
        self._config = config
        self._clock = clock
        now = self._clock.monotonic()
        self._bucket = TokenBucket(
            config.rate_bytes_per_s, int(config.rate_bytes_per_s * BURST_S), now
        )
        self._loaded = False
        self._state = WorkerState.BUSY
        # The pass under way, if any.
        self._in_pass = False
        self._next_pass_at = now
        self._page: deque[str] = deque()
        self._listed_after = ""
        self._listing_done = False
        self._cursor = ""
        self._saved_at = now
        # The chunk being verified, if any, and the block that waits for its rate budget.
        self._reader: ChunkReader | None = None
        self._blocks: deque[BlockEntry] = deque()
        self._block_ready_at: float | None = None
        # Counters.
        self._verified_bytes = 0
        self._corrupt_found = 0
        self._passes_completed = 0
        self._last_pass_finished = 0.0

    def progress(self) -> ScrubProgress:
        return ScrubProgress(
            state=self._state,
            verified_bytes=self._verified_bytes,
            corrupt_found=self._corrupt_found,
            passes_completed=self._passes_completed,
            last_pass_finished=self._last_pass_finished,
        )

    def status(self) -> Figures:
        return {
            "verified_bytes": self._verified_bytes,
            "corrupt_found": self._corrupt_found,
            "passes_completed": self._passes_completed,
            "last_pass_finished": self._last_pass_finished,
        }

    async def work(self) -> Step:
        step = await self._work()
        self._state = step.state
        return step

    async def run_pass(self) -> None:
        """Finishes the pass under way, or does a whole one starting now, at the configured
        rate; errors propagate. For tools and tests: the daemon runs ``run_worker``."""
        await self._load()
        self._next_pass_at = min(self._next_pass_at, self._clock.monotonic())
        passes = self._passes_completed
        while True:
            step = await self.work()
            if self._passes_completed != passes:
                return
            if step.wait_s > 0:
                await self._clock.sleep(step.wait_s)

    async def close(self) -> None:
        await self._close_chunk()

    # One unit of work.

    async def _work(self) -> Step:
        await self._load()
        now = self._clock.monotonic()
        if not self._in_pass:
            if now < self._next_pass_at:
                return Step(WorkerState.IDLE, self._next_pass_at - now)
            self._start_pass()
        if self._reader is not None:
            return await self._verify_next_block(self._reader, now)
        if self._page:
            await self._open_chunk(self._page.popleft())
            return BUSY
        if self._listing_done:
            await self._finish_pass()
            return Step(WorkerState.IDLE, self._config.interval_s)
        await self._list_page()
        return BUSY

    async def _list_page(self) -> None:
        chunks, truncated = await self._store.list(self._listed_after, self._config.page_chunks)
        self._page.extend(chunk.chunk_id for chunk in chunks)
        if chunks:
            self._listed_after = chunks[-1].chunk_id
        # An empty but truncated page (all of it deleted meanwhile) just lists again.
        self._listing_done = not truncated

    async def _open_chunk(self, chunk_id: str) -> None:
        self._cursor = chunk_id
        try:
            reader = await self._store.open_reader(chunk_id)
        except ChunkNotFound:
            await self._chunk_done()  # deleted since it was listed
            return
        except DataLoss as exc:
            await self._corrupt(chunk_id, exc.message)
            return
        except OSError as exc:
            if not _is_media_error(exc):
                raise
            await self._corrupt(chunk_id, f"trailer: {exc}")
            return
        self._reader = reader
        # Empty blocks hold nothing to read; their (zero) length was checked with the trailer.
        self._blocks = deque(block for block in reader.blocks if block.length > 0)
        if not self._blocks:
            await self._chunk_done()

    async def _verify_next_block(self, reader: ChunkReader, now: float) -> Step:
        block = self._blocks[0]
        if self._block_ready_at is None:
            self._block_ready_at = now + self._bucket.reserve(block.length, now)
        if now < self._block_ready_at:
            return Step(WorkerState.THROTTLED, self._block_ready_at - now)
        self._block_ready_at = None
        self._blocks.popleft()
        try:
            await reader.read_block(block)
        except DataLoss as exc:
            await self._corrupt(reader.chunk_id, exc.message)
            return BUSY
        except OSError as exc:
            if not _is_media_error(exc):
                # The rest of this chunk is skipped in this pass; the supervisor logs why.
                await self._close_chunk()
                raise
            await self._corrupt(reader.chunk_id, f"block at {block.offset}: {exc}")
            return BUSY
        except BaseException:
            await self._close_chunk()
            raise
        self._verified_bytes += block.length
        if not self._blocks:
            await self._chunk_done()
        return BUSY

    async def _corrupt(self, chunk_id: str, reason: str) -> None:
        await self._chunk_done()
        path = self._store.layout.chunk_path(chunk_id)
        if not await self._store.run_io(path.exists):
            return  # deleted while it was verified: nobody needs it any more
        if self._reports.found(chunk_id):
            self._corrupt_found += 1
            log.warning("scrub: chunk %s is corrupt, reporting it for repair: %s", chunk_id, reason)

    async def _chunk_done(self) -> None:
        await self._close_chunk()
        if self._clock.monotonic() - self._saved_at >= SAVE_INTERVAL_S:
            await self._save()

    async def _close_chunk(self) -> None:
        reader, self._reader = self._reader, None
        self._blocks.clear()
        self._block_ready_at = None
        if reader is not None:
            await reader.close()

    # Passes and their saved state.

    def _start_pass(self) -> None:
        self._in_pass = True
        self._page.clear()
        self._listed_after = self._cursor
        self._listing_done = False
        log.info("scrub pass starting%s", f" after chunk {self._cursor}" if self._cursor else "")

    async def _finish_pass(self) -> None:
        self._in_pass = False
        self._cursor = ""
        self._passes_completed += 1
        self._last_pass_finished = self._clock.time()
        self._next_pass_at = self._clock.monotonic() + self._config.interval_s
        await self._save()
        log.info(
            "scrub pass finished: %d bytes verified, %d corrupt chunks found since the node "
            "started; next pass in %.0f s",
            self._verified_bytes,
            self._corrupt_found,
            self._config.interval_s,
        )

    async def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        path = self._store.layout.scrub_state_path
        state: ScrubState = await self._store.run_io(partial(load_scrub_state, path))
        self._cursor = state.cursor
        self._last_pass_finished = state.last_pass_finished
        if state.cursor or not state.last_pass_finished:
            return  # resume the pass under way, or start the first one at once
        # Keep the pause between passes across a restart. The wall clock may have jumped, so
        # the wait is clamped to one interval.
        since_s = self._clock.time() - state.last_pass_finished
        wait_s = min(max(self._config.interval_s - since_s, 0.0), self._config.interval_s)
        self._next_pass_at = self._clock.monotonic() + wait_s

    async def _save(self) -> None:
        self._saved_at = self._clock.monotonic()
        state = ScrubState(self._cursor, self._last_pass_finished)
        path = self._store.layout.scrub_state_path
        try:
            await self._store.run_io(partial(save_scrub_state, path, state))
        except OSError as exc:
            log.warning("could not save scrub state to %s: %r", path, exc)


def _is_media_error(exc: OSError) -> bool:
    # The disk cannot deliver these bytes: as lost as if they had failed their CRC. Other
    # errors (out of descriptors, permissions) say nothing about the chunk.
    return exc.errno == errno.EIO
