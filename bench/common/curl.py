"""Large-object transfers: curl from and to files, and an aiohttp upload from a generator.

Every transfer is checked: the md5 the gateway returns for an upload, and the md5 of what a
download brought back, against the source and against the ETag.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

MIB = 1 << 20
BLOCK = 4 * MIB
CURL_TIMEOUT_S = 1800.0


@dataclass
class Transfer:
    direction: str
    method: str
    key: str
    size: int
    seconds: float
    status: int
    ok: bool
    detail: str = ""

    @property
    def mb_s(self) -> float:
        return self.size / 1e6 / self.seconds if self.seconds > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "direction": self.direction,
            "method": self.method,
            "key": self.key,
            "size_bytes": self.size,
            "seconds": round(self.seconds, 4),
            "mb_per_s": round(self.mb_s, 1),
            "status": self.status,
            "ok": self.ok,
            "detail": self.detail,
        }


def write_random_file(path: Path, size: int, seed: int) -> str:
    """Writes ``size`` pseudo-random bytes in 4 MiB blocks; returns their md5."""
    rng = random.Random(seed)
    digest = hashlib.md5(usedforsecurity=False)
    remaining = size
    with path.open("wb") as out:
        while remaining:
            block = rng.randbytes(min(BLOCK, remaining))
            digest.update(block)
            out.write(block)
            remaining -= len(block)
    return digest.hexdigest()


def md5_file(path: Path) -> str:
    with path.open("rb") as source:
        return hashlib.file_digest(source, lambda: hashlib.md5(usedforsecurity=False)).hexdigest()


def run_curl(argv: list[str]) -> tuple[int, str, str]:
    """Runs curl; returns its exit status, stdout and stderr (killed after CURL_TIMEOUT_S)."""
    process = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL
    )
    try:
        out, err = process.communicate(timeout=CURL_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return process.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def _split_write_out(stdout: str) -> tuple[str, list[str]]:
    """curl's body, then the fields of the ``-w`` line after it."""
    body, _, tail = stdout.rpartition("\n")
    return body, tail.split()


def curl_upload(url: str, key: str, source: Path, size: int, source_md5: str) -> Transfer:
    argv = [
        "curl",
        "-sS",
        "--http1.1",
        "-T",
        str(source),
        "-H",
        "Expect:",
        "-H",
        "Content-Type: application/octet-stream",
        "-o",
        "-",
        "-w",
        "\n%{http_code} %{time_total}",
        f"{url}/{key}",
    ]
    started = time.perf_counter()
    code, out, err = run_curl(argv)
    wall = time.perf_counter() - started
    body, fields = _split_write_out(out)
    status = int(fields[0]) if fields and fields[0].isdigit() else 0
    seconds = float(fields[1]) if len(fields) > 1 else wall
    transfer = Transfer("upload", "curl -T file", key, size, seconds, status, ok=False)
    if code != 0 or status != 201:
        transfer.detail = f"curl exit {code}, HTTP {status}: {err.strip()} {body[:300]}"
        return transfer
    try:
        answer = json.loads(body)
    except ValueError:
        transfer.detail = f"the answer is not JSON: {body[:300]!r}"
        return transfer
    return _check_upload_answer(transfer, answer, size, source_md5)


def _check_upload_answer(
    transfer: Transfer, answer: dict[str, Any], size: int, source_md5: str
) -> Transfer:
    md5 = answer.get("md5")
    etag = answer.get("etag")
    problems = []
    if md5 != source_md5:
        problems.append(f"md5 {md5} != source {source_md5}")
    if etag != f'"{source_md5}"':
        problems.append(f"etag {etag} != source")
    if answer.get("size") != size:
        problems.append(f"size {answer.get('size')} != {size}")
    transfer.ok = not problems
    transfer.detail = "; ".join(problems) or f"md5 {md5} matches"
    return transfer


def _etag_from_headers(path: Path) -> str | None:
    for line in path.read_text(errors="replace").splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip().lower() == "etag":
            return value.strip()
    return None


def curl_download(
    url: str, key: str, target: Path, headers: Path, size: int, direction: str = "download"
) -> tuple[Transfer, str | None]:
    """Downloads into ``target`` (a file, or /dev/null); returns the transfer (not yet
    checked) and the ETag."""
    argv = [
        "curl",
        "-sS",
        "--http1.1",
        "-D",
        str(headers),
        "-o",
        str(target),
        "-w",
        "%{http_code} %{time_total} %{size_download}",
        f"{url}/{key}",
    ]
    started = time.perf_counter()
    code, out, err = run_curl(argv)
    wall = time.perf_counter() - started
    fields = out.split()
    status = int(fields[0]) if fields and fields[0].isdigit() else 0
    seconds = float(fields[1]) if len(fields) > 1 else wall
    received = int(float(fields[2])) if len(fields) > 2 else -1
    method = "curl -o /dev/null" if str(target) == os.devnull else "curl -o file"
    transfer = Transfer(direction, method, key, size, seconds, status, ok=False)
    if code != 0 or status != 200 or received != size:
        transfer.detail = f"curl exit {code}, HTTP {status}, {received} bytes: {err.strip()}"
        return transfer, None
    return transfer, _etag_from_headers(headers) if headers.exists() else None


def check_download(
    transfer: Transfer, target: Path | None, etag: str | None, source_md5: str
) -> None:
    """Hashes what came back into ``target`` (outside the timed part), if kept, and compares
    it, and the ETag, with the source's md5."""
    problems = []
    got = md5_file(target) if target is not None else None
    if target is not None and got != source_md5:
        problems.append(f"downloaded md5 {got} != source {source_md5}")
    if etag != f'"{source_md5}"':
        problems.append(f"ETag {etag} != source md5")
    transfer.ok = not problems
    transfer.detail = "; ".join(problems) or (
        f"md5 {got} matches source and ETag" if got else f"ETag {etag} matches source md5"
    )


def pattern_blocks(total: int, seed: int, pool_blocks: int = 4) -> Iterator[bytes]:
    """``total`` bytes of 4 MiB blocks cycled from a small random pool, each stamped with its
    index so no two blocks are equal; the pool is the only memory held."""
    rng = random.Random(seed)
    pool = [rng.randbytes(BLOCK) for _ in range(pool_blocks)]
    index = 0
    sent = 0
    while sent < total:
        size = min(BLOCK, total - sent)
        stamp = index.to_bytes(8, "big")
        block = (stamp + pool[index % pool_blocks][8:])[:size]
        yield block
        sent += size
        index += 1


def pattern_md5(total: int, seed: int) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    for block in pattern_blocks(total, seed):
        digest.update(block)
    return digest.hexdigest()


async def stream_upload(url: str, key: str, total: int, seed: int, expected_md5: str) -> Transfer:
    """PUT of ``total`` generated bytes with Content-Length, streamed by aiohttp."""

    async def body() -> AsyncIterator[bytes]:
        for block in pattern_blocks(total, seed):
            yield block

    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=300)
    headers = {"Content-Length": str(total), "Content-Type": "application/octet-stream"}
    transfer = Transfer("upload", "aiohttp stream", key, total, 0.0, 0, ok=False)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        started = time.perf_counter()
        async with session.put(f"{url}/{key}", data=body(), headers=headers) as response:
            text = await response.text()
            transfer.seconds = time.perf_counter() - started
            transfer.status = response.status
    if transfer.status != 201:
        transfer.detail = f"HTTP {transfer.status}: {text[:300]}"
        return transfer
    try:
        answer = json.loads(text)
    except ValueError:
        transfer.detail = f"the answer is not JSON: {text[:300]!r}"
        return transfer
    return _check_upload_answer(transfer, answer, total, expected_md5)
