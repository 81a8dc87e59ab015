"""What verifying block digests costs: hash rates, and GET with digests against GET without.

    uv run python -m bench.blockhash [--size-mib 256] [--rounds 5]

First the candidate hashes (and CRC-32C for scale), MB/s on 1 MiB blocks, best of five
0.4-second runs on one core. Then a real 6-node ec:4+2 cluster on loopback: two objects of the
same size are uploaded, and one has its digests removed from the metadata, which is exactly an
object written before digests were recorded (read and verified by CRC alone). The two are
downloaded in alternation with curl to /dev/null, ``--rounds`` times each, so both see the
same machine load; the report gives each one's median MB/s, the gateway's CPU seconds per GiB
served, and their ratio. Exits non-zero if a download came back wrong.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import crc32c
import psutil

from bench.common.cli import OPEN_GATEWAY_ARGS, say
from bench.common.curl import curl_download, curl_upload, write_random_file
from diststorage.testing import running_cluster

MIB = 1 << 20
HASH_RUN_S = 0.4
HASH_RUNS = 5

CANDIDATES: dict[str, Callable[[bytes], object]] = {
    "crc32c (for scale)": crc32c.crc32c,
    "blake3 (chosen)": lambda b: blake3.blake3(b).digest(),
    "sha256": lambda b: hashlib.sha256(b).digest(),
    "blake2b-32": lambda b: hashlib.blake2b(b, digest_size=32).digest(),
    "blake2b-16": lambda b: hashlib.blake2b(b, digest_size=16).digest(),
}


def hash_rate_mb_s(hash_block: Callable[[bytes], object], block: bytes) -> float:
    best = 0.0
    for _ in range(HASH_RUNS):
        count, started = 0, time.perf_counter()
        while time.perf_counter() - started < HASH_RUN_S:
            hash_block(block)
            count += 1
        best = max(best, count * len(block) / 1e6 / (time.perf_counter() - started))
    return best


def forget_digests(database: Path, key: str) -> int:
    """NULLs the digests of the object's chunks; returns how many chunk rows it changed."""
    connection = sqlite3.connect(database, timeout=10)
    try:
        changed = connection.execute(
            "UPDATE chunks SET block_digests = NULL WHERE object_id ="
            " (SELECT id FROM objects WHERE key = ? AND state = 'committed')",
            (key.encode(),),
        ).rowcount
        connection.commit()
    finally:
        connection.close()
    return changed


def run_gets(size_mib: int, rounds: int, workdir: Path) -> bool:
    size = size_mib * MIB
    source = workdir / "source.bin"
    source_md5 = write_random_file(source, size, seed=15)
    headers = workdir / "headers"
    with running_cluster(workdir / "cluster", gateway_args=OPEN_GATEWAY_ARGS) as cluster:
        gateway = psutil.Process(cluster.gateway_pids()[0])
        keys = {"with digests": "checked", "crc only": "crc-only"}
        for key in keys.values():
            upload = curl_upload(cluster.url, key, source, size, source_md5)
            if not upload.ok:
                say(f"upload of {key} failed: {upload.detail}")
                return False
        changed = forget_digests(cluster.data_dir / "gateway" / "metadata.db", keys["crc only"])
        say(f"digests removed from {changed} chunk rows of {keys['crc only']!r}")
        rates: dict[str, list[float]] = {label: [] for label in keys}
        cpu_s: dict[str, float] = dict.fromkeys(keys, 0.0)
        for _ in range(rounds):
            for label, key in keys.items():
                before = sum(gateway.cpu_times()[:2])
                down, etag = curl_download(cluster.url, key, Path(os.devnull), headers, size)
                cpu_s[label] += sum(gateway.cpu_times()[:2]) - before
                if down.status != 200 or etag != f'"{source_md5}"':
                    say(f"download of {key} failed: {down.detail or etag}")
                    return False
                rates[label].append(down.mb_s)
    print(f"\nGET of a {size_mib} MiB ec:4+2 object, curl -o /dev/null, {rounds} rounds each:")
    for label in keys:
        per_gib = cpu_s[label] / (rounds * size / (1 << 30))
        runs = ", ".join(f"{r:.0f}" for r in rates[label])
        print(
            f"  {label:13s} median {statistics.median(rates[label]):6.0f} MB/s "
            f"(runs {runs}); gateway {per_gib:.2f} CPU-s per GiB"
        )
    ratio = statistics.median(rates["with digests"]) / statistics.median(rates["crc only"])
    print(f"  with digests / crc only: {ratio:.1%} of the rate")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    block = os.urandom(MIB)
    print(f"hash rates on 1 MiB blocks, one core, best of {HASH_RUNS}:")
    for name, hash_block in CANDIDATES.items():
        print(f"  {name:20s} {hash_rate_mb_s(hash_block, block):7.0f} MB/s")
    with tempfile.TemporaryDirectory(prefix="bench-blockhash-") as workdir:
        ok = run_gets(args.size_mib, args.rounds, Path(workdir))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
