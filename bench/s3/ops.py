"""4 KiB PUT and GET at a fixed concurrency, through the S3 API and the native API, both
signed by our SigV4 signer (``diststorage.s3auth.signer``) over aiohttp keep-alive connections.

Both fronts get the same client, the same bodies and the same signing, so the figures compare
the gateway's two front ends and not two client libraries. Each PUT signs its body's sha256,
as boto3 does over http. PUT writes distinct keys; GET reads back the keys that front's PUT
wrote, cycling through them, and compares each body byte for byte.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp

from bench.s3.profile import BUCKET
from diststorage.client import Credentials
from diststorage.s3auth import sign_request

OBJECT_BYTES = 4096
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class Front:
    """Where a front end takes objects, and what it answers a PUT."""

    name: str
    base_url: str  # an object's URL is base_url + "/" + key
    put_status: int


def fronts(native_url: str, s3_url: str) -> list[Front]:
    return [Front("native", native_url, 201), Front("S3", f"{s3_url}/{BUCKET}", 200)]


def body_of(index: int) -> bytes:
    """Object ``index``'s body: distinct per index, so a GET proves it read the right one."""
    stamp = index.to_bytes(8, "big")
    return (stamp * (OBJECT_BYTES // len(stamp)))[:OBJECT_BYTES]


@dataclass
class Tally:
    ops: int = 0
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0

    def __post_init__(self) -> None:
        self.latencies_ms: list[float] = []

    def percentile_ms(self, q: float) -> float:
        if not self.latencies_ms:
            return math.nan
        ordered = sorted(self.latencies_ms)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


OneOp = Callable[[aiohttp.ClientSession, int], Awaitable[str | None]]


class Signed:
    """Signs requests with one key."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def headers(self, method: str, url: str, given: dict[str, str], sha256: str) -> dict[str, str]:
        key = self.credentials
        added = sign_request(method, url, given, sha256, key.access_key_id, key.secret_access_key)
        return {**given, **added}


def put_op(front: Front, signer: Signed, prefix: str, written: list[int]) -> OneOp:
    async def one(session: aiohttp.ClientSession, index: int) -> str | None:
        url = f"{front.base_url}/{prefix}-{index:08d}"
        body = body_of(index)
        given = {"Content-Type": "application/octet-stream", "Content-Length": str(len(body))}
        headers = signer.headers("PUT", url, given, hashlib.sha256(body).hexdigest())
        async with session.put(url, data=body, headers=headers) as response:
            await response.read()
            if response.status != front.put_status:
                return f"{front.name} PUT HTTP {response.status}"
        written.append(index)
        return None

    return one


def get_op(front: Front, signer: Signed, prefix: str, indexes: list[int]) -> OneOp:
    async def one(session: aiohttp.ClientSession, i: int) -> str | None:
        index = indexes[i % len(indexes)]
        url = f"{front.base_url}/{prefix}-{index:08d}"
        async with session.get(
            url, headers=signer.headers("GET", url, {}, UNSIGNED_PAYLOAD)
        ) as response:
            body = await response.read()
            if response.status != 200:
                return f"{front.name} GET HTTP {response.status}"
        if body != body_of(index):
            return f"{front.name} GET {prefix}-{index:08d}: the body differs from what was written"
        return None

    return one


async def drive(
    session: aiohttp.ClientSession, concurrency: int, seconds: float, one_op: OneOp
) -> Tally:
    """``one_op(session, i)`` for i = 0, 1, … from ``concurrency`` workers for ``seconds``."""
    tally = Tally()
    next_index = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal next_index
        while time.perf_counter() < deadline:
            index = next_index
            next_index += 1
            started = time.perf_counter()
            try:
                problem = await one_op(session, index)
            except (aiohttp.ClientError, TimeoutError) as error:
                problem = f"{type(error).__name__}: {error}"
            if problem is None:
                tally.ops += 1
                tally.latencies_ms.append((time.perf_counter() - started) * 1000)
            else:
                tally.errors += 1
                tally.first_error = tally.first_error or problem

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    tally.seconds = time.perf_counter() - started
    return tally


def session_for(concurrency: int) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60))
