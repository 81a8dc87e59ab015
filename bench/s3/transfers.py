"""Large transfers, S3 against native, in the same run and alternating, and the gateway's
memory during a multipart upload with many parts in flight.

Each round uploads the source file once per client, in turn (the order rotates from round to
round, so no client always goes first after a quiet moment), then downloads each client's
object with the same client, in turn. Every download goes into a file, which is hashed after
the timer stops and compared with the source: all three clients have to write a file, so all
three pay for filling the page cache alike.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from pathlib import Path

from boto3.s3.transfer import TransferConfig

from bench.common.cli import say
from bench.common.curl import md5_file
from bench.common.report import size_label
from bench.common.sampler import ClusterSampler, settle
from bench.s3.clients import Boto3Client, LargeClient, TransferFailed
from bench.s3.profile import MemoryCase, Results, TransferRun
from diststorage.client import Credentials

# /proc/<pid>/status fields, in kB.
_RSS_FIELD = "VmRSS:"
_HWM_FIELD = "VmHWM:"


def rotated(clients: Sequence[LargeClient], by: int) -> list[LargeClient]:
    shift = by % len(clients)
    return [*clients[shift:], *clients[:shift]]


def _timed_upload(
    results: Results, sampler: ClusterSampler, client: LargeClient, source: Path, key: str
) -> None:
    size = source.stat().st_size
    settle()
    say(f"upload {size_label(size)} with {client.name}")
    with sampler.phase(f"upload {client.name} {key}") as phase:
        started = time.perf_counter()
        try:
            client.upload(source, key)
            ok, detail = True, ""
        except TransferFailed as error:
            ok, detail = False, str(error)
        seconds = time.perf_counter() - started
    results.transfers.append(TransferRun(client.name, "upload", size, seconds, ok, detail, phase))
    if not ok:
        results.fail(f"upload with {client.name}: {detail}")


def _timed_download(
    results: Results,
    sampler: ClusterSampler,
    client: LargeClient,
    key: str,
    target: Path,
    expected: tuple[int, str],
) -> None:
    size, md5 = expected
    settle()
    say(f"download {size_label(size)} with {client.name}")
    with sampler.phase(f"download {client.name} {key}") as phase:
        started = time.perf_counter()
        try:
            client.download(key, target)
            ok, detail = True, ""
        except TransferFailed as error:
            ok, detail = False, str(error)
        seconds = time.perf_counter() - started
    if ok:
        got = (target.stat().st_size, md5_file(target))
        if got != expected:
            ok, detail = False, f"downloaded {got[0]} bytes, md5 {got[1]}; expected {size}, {md5}"
    target.unlink(missing_ok=True)
    results.transfers.append(TransferRun(client.name, "download", size, seconds, ok, detail, phase))
    if not ok:
        results.fail(f"download with {client.name}: {detail}")


def run_transfers(
    results: Results,
    sampler: ClusterSampler,
    clients: Sequence[LargeClient],
    source: Path,
    source_md5: str,
) -> None:
    expected = (source.stat().st_size, source_md5)
    target = source.with_name("download.bin")
    for round_index in range(results.profile.transfer_rounds):
        order = rotated(clients, round_index)
        keys = {c.name: f"bench-s3/large-{c.name}-{round_index}" for c in order}
        for client in order:
            _timed_upload(results, sampler, client, source, keys[client.name])
        for client in order:
            _timed_download(results, sampler, client, keys[client.name], target, expected)


def proc_status_bytes(pid: int, field: str) -> int:
    """A memory field of /proc/<pid>/status (VmRSS, VmHWM), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def multipart_etag(path: Path, part_bytes: int) -> str:
    """S3's ETag for ``path`` uploaded in parts of ``part_bytes``: md5 of the part md5s, -N."""
    digests = b""
    count = 0
    with path.open("rb") as source:
        while part := source.read(part_bytes):
            digests += hashlib.md5(part, usedforsecurity=False).digest()
            count += 1
    return f'"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{count}"'


def run_memory_case(
    results: Results,
    sampler: ClusterSampler,
    url: str,
    credentials: Credentials,
    gateway_pid: int,
    source: Path,
) -> None:
    """A boto3 multipart upload with ``multipart_in_flight`` parts at once; the gateway's RSS
    sampled every 50 ms (ClusterSampler) and its VmHWM read after. The stored object's size
    and ETag (md5 of the part md5s) are checked afterwards, untimed."""
    profile = results.profile
    part = profile.multipart_part_bytes
    transfer = TransferConfig(
        multipart_threshold=part,
        multipart_chunksize=part,
        max_concurrency=profile.multipart_in_flight,
    )
    client = Boto3Client(url, credentials, transfer)
    key = "bench-s3/multipart-rss"
    size = source.stat().st_size
    settle()
    in_flight = profile.multipart_in_flight
    say(f"multipart upload {size_label(size)}: {size_label(part)} parts, {in_flight} in flight")
    rss_before = proc_status_bytes(gateway_pid, _RSS_FIELD)
    with sampler.phase("multipart upload, parts in flight") as phase:
        started = time.perf_counter()
        try:
            client.upload(source, key)
            ok, detail = True, ""
        except TransferFailed as error:
            ok, detail = False, str(error)
        seconds = time.perf_counter() - started
    hwm_after = proc_status_bytes(gateway_pid, _HWM_FIELD)
    if ok:
        ok, detail = _check_stored(client, key, size, multipart_etag(source, part))
    results.memory = MemoryCase(
        size, part, profile.multipart_in_flight, seconds, ok, detail,
        rss_before, phase.gateway_peak_rss, hwm_after, phase,
    )  # fmt: skip
    if not ok:
        results.fail(f"multipart upload (RSS case): {detail}")


def _check_stored(client: Boto3Client, key: str, size: int, etag: str) -> tuple[bool, str]:
    head = client.head(key)
    got = (head["ContentLength"], head["ETag"])
    if got != (size, etag):
        return False, f"stored {got}; expected {(size, etag)}"
    return True, ""
