"""What mutual TLS on the cluster's gRPC links costs large transfers: two clusters side by
side in one run (sides.py), one over mTLS (the default) and one ``--insecure-cluster``, the
same object uploaded to and downloaded from each in turn, alternating which goes first each
round, so that both see the same machine (page cache, other load) and neither always runs warm.

    uv run python -m bench.transfer --link-comparison [--link-size-mib 1024] [--link-rounds 3]

Prints each transfer and the median rate of each mode with the loss of mTLS against plaintext.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.common.cli import say
from bench.common.curl import (
    Transfer,
    check_download,
    curl_download,
    curl_upload,
    write_random_file,
)
from bench.common.sampler import settle
from bench.transfer.sides import Side, running_sides, turns
from diststorage.local import LocalCluster

MODES = ("mtls", "plaintext")
SIDES = (Side("mtls"), Side("plaintext", insecure_cluster=True))


@dataclass
class LinkComparison:
    size: int
    transfers: dict[str, list[Transfer]] = field(default_factory=lambda: {m: [] for m in MODES})
    failures: list[str] = field(default_factory=list)

    def median_mb_s(self, mode: str, direction: str) -> float:
        rates = [t.mb_s for t in self.transfers[mode] if t.direction == direction and t.ok]
        return statistics.median(rates) if rates else 0.0

    def loss_percent(self, direction: str) -> float:
        plain = self.median_mb_s("plaintext", direction)
        secure = self.median_mb_s("mtls", direction)
        return 100.0 * (plain - secure) / plain if plain else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "size_bytes": self.size,
            "transfers": {m: [t.to_json() for t in ts] for m, ts in self.transfers.items()},
            "median_mb_s": {
                m: {d: self.median_mb_s(m, d) for d in ("upload", "download")} for m in MODES
            },
            "mtls_loss_percent": {d: self.loss_percent(d) for d in ("upload", "download")},
            "failures": self.failures,
        }


def _round(
    comparison: LinkComparison, mode: str, cluster: LocalCluster, source: Path, md5: str, n: int
) -> None:
    size = comparison.size
    key = f"links-{mode}-{n}"
    settle()
    say(f"{mode}: upload round {n + 1}")
    up = curl_upload(cluster.url, key, source, size, md5)
    comparison.transfers[mode].append(up)
    if not up.ok:
        comparison.failures.append(f"{mode} upload: {up.detail}")
        return
    settle()
    say(f"{mode}: download round {n + 1}")
    headers = source.with_suffix(".headers")
    down, etag = curl_download(cluster.url, key, Path(os.devnull), headers, size)
    if down.status == 200 and not down.detail:
        check_download(down, None, etag, md5)
    headers.unlink(missing_ok=True)
    comparison.transfers[mode].append(down)
    if not down.ok:
        comparison.failures.append(f"{mode} download: {down.detail}")


def run_link_comparison(workdir: Path, size: int, rounds: int) -> LinkComparison:
    comparison = LinkComparison(size)
    source = workdir / "links-source.bin"
    say(f"generating {size >> 20} MiB of random data")
    md5 = write_random_file(source, size, seed=size)
    with running_sides(workdir, SIDES) as sides:
        for n, mode in turns(rounds, MODES):
            _round(comparison, mode, sides[mode].cluster, source, md5, n)
    source.unlink()
    return comparison


def print_comparison(comparison: LinkComparison) -> None:
    for mode in MODES:
        for transfer in comparison.transfers[mode]:
            print(f"{mode:9} {transfer.direction:8} {transfer.mb_s:8.1f} MB/s  ok={transfer.ok}")
    for direction in ("upload", "download"):
        print(
            f"{direction:8} median: mTLS {comparison.median_mb_s('mtls', direction):.1f} MB/s, "
            f"plaintext {comparison.median_mb_s('plaintext', direction):.1f} MB/s, "
            f"mTLS loss {comparison.loss_percent(direction):+.1f} %"
        )
    for failure in comparison.failures:
        print(f"FAILED: {failure}")
