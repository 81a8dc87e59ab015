"""The chaos load: N clients doing PUT, GET and DELETE against the gateway, every answer checked
against the model of what is committed.

Bodies are streamed both ways and hashed on the fly; nothing holds a whole object. What counts as
what:

- PUT 201: committed (the md5 the gateway returns must be ours). Any other status: not committed
  (writes are transactional), counted as an error of that kind. A cut connection after the whole
  body was sent: maybe committed; before: not.
- GET 200: the md5 and size read must be one of the key's possible versions, else an md5
  mismatch. GET 404 of a key that is certainly committed, or any failed GET (status or cut
  connection) of such a key: a read failure. Failed GETs of uncertain keys are plain errors.
- DELETE 204: gone. DELETE 404 of a certainly committed key: a read failure (the object was lost).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field

import aiohttp

from bench.common.load.model import (
    BLOCK_BYTES,
    ContentPool,
    LoadMix,
    Model,
    OpKind,
    State,
    Version,
    choose_op,
    judge_read,
)
from bench.common.load.stats import LoadStats

SOCK_CONNECT_S = 10.0
SOCK_READ_S = 90.0
STOP_GRACE_S = 180.0
BUSY_RETRY_S = 0.05
ERROR_BACKOFF_S = 0.2
BALLAST_WRITERS = 2
BALLAST_SEED = 0xBA11A57
INSUFFICIENT_STORAGE = 507


def _error_code(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return ""
    return str(answer.get("error", "")) if isinstance(answer, dict) else ""


def _status_kind(op: str, status: int, body: bytes) -> str:
    code = _error_code(body)
    return f"{op} HTTP {status}" + (f" {code}" if code else "")


def _exception_kind(op: str, exc: BaseException) -> str:
    return f"{op} {type(exc).__name__}"


@dataclass
class UploadBody:
    """An object body as an async iterator of blocks: hashed and counted as it is sent."""

    blocks: Iterator[bytes]
    stats: LoadStats
    digest: hashlib._Hash = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    moved: Counter[int] = field(default_factory=Counter)  # bytes sent, by phase
    complete: bool = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for block in self.blocks:
            self.digest.update(block)
            self.stats.sent(len(block), self.moved)
            yield block
        self.complete = True


@dataclass
class Download:
    """A GET body, hashed and counted as it arrives."""

    stats: LoadStats
    kills_before: int = 0  # of the gateway it reads from, when it started
    digest: hashlib._Hash = field(default_factory=lambda: hashlib.md5(usedforsecurity=False))
    received_bytes: int = 0
    moved: Counter[int] = field(default_factory=Counter)  # bytes received, by phase

    async def consume(self, answer: aiohttp.ClientResponse) -> None:
        async for chunk in answer.content.iter_chunked(BLOCK_BYTES):
            self.digest.update(chunk)
            self.received_bytes += len(chunk)
            self.stats.received(len(chunk), self.moved)


def no_faults() -> tuple[int, int]:
    return 0, 0


@dataclass
class LoadRunner:
    """``clients`` workers, each with its own seeded random stream, over one keep-alive pool.

    ``fault_state`` returns (faults started so far, nodes unavailable now): a PUT that began
    with a node unavailable, or during which a fault started, is marked as written under a
    fault, so a failed read of it can be told from one of an object written in full. ec:4+2
    written with a node down keeps 5 shards and survives one more loss, not two, until repair.
    """

    url: str
    mix: LoadMix
    model: Model
    content: ContentPool
    stats: LoadStats
    clients: int
    seed: int
    fault_state: Callable[[], tuple[int, int]] = no_faults
    # Several gateways: the ones up now, and how often each has been killed so far (an
    # operation that sees that change was cut off by the kill, and is tried once more on
    # another gateway, as a client behind a load balancer would).
    live_urls: Callable[[], Sequence[str]] | None = None
    kills_of: Callable[[str], int] = lambda _url: 0
    _turn: int = 0
    _under_fault: set[str] = field(default_factory=set)
    _session: aiohttp.ClientSession | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _workers: list[asyncio.Task[None]] = field(default_factory=list)

    async def __aenter__(self) -> LoadRunner:
        connector = aiohttp.TCPConnector(limit=self.clients)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=SOCK_CONNECT_S, sock_read=SOCK_READ_S
        )
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        # Leaving on an error or a cancellation (Ctrl-C): no waiting for operations in hand.
        await self.stop(grace_s=STOP_GRACE_S if exc_type is None else 0.0)
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use LoadRunner as an async context manager"
        return self._session

    # -- phases ---------------------------------------------------------------------------------

    async def seed_objects(self, fraction: float) -> None:
        """PUTs ``fraction`` of every class's keys, so GETs and DELETEs have something to
        work on from the first second of the measured load."""
        rng = random.Random(self.seed)
        work = [(c, c.key(i)) for c in self.mix.classes for i in range(round(c.keys * fraction))]
        rng.shuffle(work)
        queue = iter(work)

        async def seeder() -> None:
            for size_class, key in queue:
                self.model.claim_key(key)
                try:
                    await self._put(key, size_class.draw_size(rng), rng)
                finally:
                    self.model.release(key)

        await asyncio.gather(*(seeder() for _ in range(self.clients)))

    async def store_ballast(self, count: int, size: int) -> None:
        """PUTs ``count`` objects of ``size`` bytes under ``chaos/ballast/``, keys the load
        never picks: bytes for a repair to rebuild. The audit reads them back like the rest."""
        rng = random.Random(self.seed + BALLAST_SEED)
        keys = iter(f"chaos/ballast/{i:04d}" for i in range(count))

        async def writer() -> None:
            for key in keys:
                self.model.claim_key(key)
                try:
                    await self._put(key, size, rng)
                finally:
                    self.model.release(key)

        await asyncio.gather(*(writer() for _ in range(BALLAST_WRITERS)))

    def start(self) -> None:
        """Starts the mixed load; it runs until ``stop``."""
        assert not self._workers, "the load is already running"
        self._stop.clear()
        self._workers = [
            asyncio.create_task(self._worker(random.Random(self.seed * 1000 + i)))
            for i in range(self.clients)
        ]

    def raise_if_failed(self) -> None:
        """Raises what a worker died of (a bug in this benchmark, not an error of the store)."""
        for task in self._workers:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError("a load worker failed") from task.exception()

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Lets every worker finish the operation in hand (up to ``grace_s``), then cancels."""
        if not self._workers:
            return
        self._stop.set()
        workers, self._workers = self._workers, []
        _, pending = (
            await asyncio.wait(workers, timeout=grace_s) if grace_s > 0 else ((), set(workers))
        )
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in workers:
            if task not in pending and task.exception() is not None:
                raise RuntimeError("a load worker failed") from task.exception()

    async def audit(self) -> None:
        """GETs every key that may exist, once, and checks it like any other GET."""
        queue = iter(self.model.existing_keys())

        async def auditor() -> None:
            for key in queue:
                self.model.claim_key(key)
                try:
                    await self._get(key)
                finally:
                    self.model.release(key)

        await asyncio.gather(*(auditor() for _ in range(self.clients)))

    async def _worker(self, rng: random.Random) -> None:
        while not self._stop.is_set():
            chosen = choose_op(self.mix, self.model, rng)
            if chosen is None:
                await asyncio.sleep(BUSY_RETRY_S)
                continue
            kind, size_class, key = chosen
            errors_before = self.stats.error_count
            try:
                if kind is OpKind.PUT:
                    await self._put(key, size_class.draw_size(rng), rng)
                elif kind is OpKind.GET:
                    await self._get(key)
                else:
                    await self._delete(key)
            finally:
                self.model.release(key)
            if self.stats.error_count != errors_before:
                # As a real client would: a 503 comes back at once, and retrying in a tight
                # loop while two nodes are down would only burn the CPU the cluster needs.
                await asyncio.sleep(ERROR_BACKOFF_S)

    # -- operations -----------------------------------------------------------------------------

    def _gateway(self, avoid: str | None = None) -> str:
        """The next gateway in turn of those up (``avoid`` left out when another is up)."""
        urls = list(self.live_urls()) if self.live_urls is not None else [self.url]
        urls = [u for u in urls if u != avoid] or urls or [self.url]
        self._turn += 1
        return urls[self._turn % len(urls)]

    async def put_with_policy(
        self, key: str, size: int, rng: random.Random, redundancy: str
    ) -> str:
        """One PUT of ``key`` with ``X-Redundancy: redundancy``, outside the load's error
        counts, the model updated as for any PUT so that the audit reads it back: "" if it
        committed, else what went wrong (a connection cut after the whole body went may have
        committed all the same; the model allows for both)."""
        self.model.claim_key(key)
        try:
            status, text = await self._send(
                key, size, rng, headers={"X-Redundancy": redundancy}, count_errors=False
            )
        finally:
            self.model.release(key)
        if status == 201:
            return ""
        if not status:
            return "PUT connection cut"
        return _status_kind("PUT", status, text)

    async def _put(self, key: str, size: int, rng: random.Random) -> None:
        faults_before, unavailable = self.fault_state()
        status, _ = await self._send(key, size, rng, nodes_out=unavailable)
        if status not in (None, 201):
            return
        if unavailable or self.fault_state()[0] != faults_before:
            self._under_fault.add(key)
        else:
            self._under_fault.discard(key)

    async def _send(
        self,
        key: str,
        size: int,
        rng: random.Random,
        headers: dict[str, str] | None = None,
        count_errors: bool = True,
        nodes_out: int = 0,
    ) -> tuple[int | None, bytes]:
        """The PUT itself: (its status, or None when the connection was cut after the whole
        body went, so the version sent may be the committed one; the answer's body). A
        connection cut before the whole body went gives (0, b"")."""
        body = UploadBody(self.content.blocks(rng.getrandbits(64), size), self.stats)
        data: bytes | UploadBody = body
        if size <= BLOCK_BYTES:
            data = b"".join([block async for block in body])
        headers = {
            **(headers or {}),
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
        }
        try:
            base = self._gateway()
            async with self.session.put(f"{base}/{key}", data=data, headers=headers) as answer:
                text = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, OSError, asyncio.CancelledError) as exc:
            # The write may have committed if the gateway got the whole body.
            if body.complete:
                self.model.widen(key, Version(body.digest.hexdigest(), size))
            if isinstance(exc, asyncio.CancelledError):
                raise
            if count_errors:
                self.stats.error(_exception_kind("PUT", exc))
            self.stats.wasted(body.moved)
            return (None, b"") if body.complete else (0, b"")
        if status != 201:
            if count_errors:
                kind = _status_kind("PUT", status, text)
                if status == INSUFFICIENT_STORAGE:
                    # Which refusals for lack of room the nodes held down explain: with M
                    # out, ec:K+M has no node to spare; with fewer, a full node must be
                    # passed over, not refuse the write.
                    kind += f" ({max(nodes_out, self.fault_state()[1])} nodes out)"
                self.stats.error(kind)
            self.stats.wasted(body.moved)
            return status, text
        ours = Version(body.digest.hexdigest(), size)
        self.model.settle(key, ours)
        self.stats.done("PUT")
        returned = _json_field(text, "md5")
        if returned != ours.md5_hex:
            self.stats.md5_mismatch("PUT", key, f"gateway says md5 {returned}, sent {ours}")
        return status, text

    async def _get(self, key: str) -> None:
        possible = self.model.possible(key)
        base = self._gateway()
        download, got, problem = await self._try_read(base, key)
        if problem and self.kills_of(base) != download.kills_before:
            self.stats.error(f"{problem} (gateway killed)")
            self.stats.wasted(download.moved)
            download, got, problem = await self._try_read(self._gateway(avoid=base), key)
        if problem:
            self.stats.error(problem)
            self.stats.wasted(download.moved)
            if None not in possible:
                self.stats.read_failure("GET", key, problem, key in self._under_fault)
            return
        self.stats.done("GET")
        verdict = judge_read(possible, got)
        if verdict == "lost":
            self.stats.read_failure("GET", key, "404 for a committed key", key in self._under_fault)
        elif verdict == "mismatch":
            self.stats.md5_mismatch("GET", key, f"read {got}, expected one of {possible}")
            return
        self.model.settle(key, got)

    async def _try_read(self, base: str, key: str) -> tuple[Download, State, str]:
        download = Download(self.stats, kills_before=self.kills_of(base))
        try:
            got, problem = await self._read(base, key, download)
        except (aiohttp.ClientError, OSError) as exc:
            got, problem = None, _exception_kind("GET", exc)
        return download, got, problem

    async def _read(self, base: str, key: str, download: Download) -> tuple[State, str]:
        """Streams a GET into ``download``: (the version read, or None for 404; a problem,
        or "")."""
        async with self.session.get(f"{base}/{key}") as answer:
            if answer.status == 404:
                await answer.read()
                return None, ""
            if answer.status != 200:
                return None, _status_kind("GET", answer.status, await answer.read())
            await download.consume(answer)
            declared = answer.content_length
        size = download.received_bytes
        if declared is not None and size != declared:
            return None, f"GET short body ({size} of {declared} bytes)"
        return Version(download.digest.hexdigest(), size), ""

    async def _delete(self, key: str) -> None:
        was_committed = self.model.certainly_committed(key)
        try:
            async with self.session.delete(f"{self._gateway()}/{key}") as answer:
                text = await answer.read()
                status = answer.status
        except (aiohttp.ClientError, OSError, asyncio.CancelledError) as exc:
            self.model.widen(key, None)
            if isinstance(exc, asyncio.CancelledError):
                raise
            self.stats.error(_exception_kind("DELETE", exc))
            return
        if status not in (204, 404):
            self.stats.error(_status_kind("DELETE", status, text))
            return
        self.stats.done("DELETE")
        if status == 404 and was_committed:
            self.stats.read_failure(
                "DELETE", key, "404 for a committed key", key in self._under_fault
            )
        self.model.settle(key, None)


def _json_field(text: bytes, name: str) -> str | None:
    try:
        answer = json.loads(text)
    except ValueError:
        return None
    value = answer.get(name) if isinstance(answer, dict) else None
    return None if value is None else str(value)
