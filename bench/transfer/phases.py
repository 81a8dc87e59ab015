"""The transfer benchmark's steps against one cluster: idle, 4 KiB cases, large transfers, the
streamed upload."""

from __future__ import annotations

import asyncio
import functools
import os
import random
import time
from contextlib import ExitStack
from pathlib import Path

import uvloop

from bench.common.cli import (
    OPEN_GATEWAY_ARGS,
    say,
)
from bench.common.curl import (
    check_download,
    curl_download,
    curl_upload,
    pattern_md5,
    stream_upload,
    write_random_file,
)
from bench.common.interrupt import ignore_interrupts
from bench.common.ops import OBJECT_BYTES, Budget, get_case, put_case
from bench.common.report import (
    size_label,
)
from bench.common.sampler import ClusterSampler, settle
from bench.transfer.ceilings import ROOT, measure_ceilings
from bench.transfer.disk import measure_disk_floor
from bench.transfer.results import (
    CONCURRENCIES,
    NODES,
    REDUNDANCY,
    OpsRecord,
    Results,
    RssCase,
    TransferRecord,
)
from bench.transfer.sides import compile_sources
from diststorage.testing import running_cluster

# -- phases ------------------------------------------------------------------------------------


def run_ops(results: Results, sampler: ClusterSampler, runner: asyncio.Runner, url: str) -> None:
    profile = results.profile
    base = random.Random(4096).randbytes(OBJECT_BYTES)
    for concurrency in CONCURRENCIES:
        settle()
        say(f"4 KiB PUT, concurrency {concurrency}, {profile.ops_seconds:g} s")
        put, written, put_phase = runner.run(
            put_case(
                [url],
                base,
                f"ops-c{concurrency}",
                concurrency,
                Budget(profile.ops_seconds, profile.max_ops),
                Budget(profile.ops_warmup_s, profile.max_ops),
                functools.partial(sampler.phase, f"PUT 4 KiB c={concurrency}"),
            )
        )
        results.ops.append(OpsRecord(put, put_phase))
        if put.errors:
            results.fail(f"PUT c={concurrency}: {put.errors} errors, first: {put.first_error}")
        say(f"4 KiB GET, concurrency {concurrency}, {profile.ops_seconds:g} s")
        get, get_phase = runner.run(
            get_case(
                [url],
                base,
                f"ops-c{concurrency}",
                written,
                concurrency,
                Budget(profile.ops_seconds, profile.max_ops),
                Budget(profile.ops_warmup_s, profile.max_ops),
                functools.partial(sampler.phase, f"GET 4 KiB c={concurrency}"),
            )
        )
        results.ops.append(OpsRecord(get, get_phase))
        if get.errors:
            results.fail(f"GET c={concurrency}: {get.errors} errors, first: {get.first_error}")


def run_transfers(results: Results, sampler: ClusterSampler, url: str, workdir: Path) -> None:
    profile = results.profile
    largest = max(profile.transfer_sizes)
    download = workdir / "download.bin"
    headers = workdir / "download.headers"
    for size in profile.transfer_sizes:
        label = size_label(size)
        source = workdir / f"source-{size}.bin"
        say(f"generating {label} of random data")
        source_md5 = write_random_file(source, size, seed=size)
        if size == largest:
            # The machine's ceilings for this size, in this run, beside the transfers they bound.
            results.ceilings = measure_ceilings(workdir, source)
            for failure in results.ceilings.failures:
                results.fail(failure)
        for repeat in range(profile.repeats(size)):
            key = f"blob-{size}-{repeat}"
            # The floor right before each upload, so each upload has a disk figure beside it.
            say(f"disk floor for {label}: {size_label(int(size * 1.5))} as fsync'd 4 MiB files")
            floor = measure_disk_floor(workdir / f"floor-{size}-{repeat}", size)
            results.floors.setdefault(size, []).append(floor)
            settle()
            say(f"upload {label} (curl), run {repeat + 1}/{profile.repeats(size)}")
            with sampler.phase(f"upload {label} #{repeat + 1}") as up_phase:
                up = curl_upload(url, key, source, size, source_md5)
            results.transfers.append(TransferRecord(up, up_phase, repeat))
            if size == largest and repeat == 0:
                results.rss.append(RssCase("upload", size, up.method, up_phase))
            if not up.ok:
                results.fail(f"upload {label}: {up.detail}")
                continue
            settle()
            say(f"download {label} (curl), run {repeat + 1}/{profile.repeats(size)}")
            with sampler.phase(f"download {label} #{repeat + 1}") as down_phase:
                down, etag = curl_download(url, key, Path(os.devnull), headers, size)
            if down.status == 200 and not down.detail:
                check_download(down, None, etag, source_md5)
            results.transfers.append(TransferRecord(down, down_phase, repeat))
            if size == largest and repeat == 0:
                results.rss.append(RssCase("download", size, down.method, down_phase))
            if not down.ok:
                results.fail(f"download {label}: {down.detail}")
            # The timed download goes to /dev/null: writing 1 GiB into the page cache costs
            # curl about a CPU-second, which on 2 cores comes out of the cluster's share. The
            # bytes are checked by a second, untimed download into a file.
            say(f"verify {label}: download into a file and compare md5s")
            with sampler.phase(f"verify download {label} #{repeat + 1}") as verify_phase:
                verify, etag = curl_download(url, key, download, headers, size, "verify")
            try:
                if verify.status == 200 and not verify.detail:
                    check_download(verify, download, etag, source_md5)
            finally:
                download.unlink(missing_ok=True)
                headers.unlink(missing_ok=True)
            results.transfers.append(TransferRecord(verify, verify_phase, repeat))
            if not verify.ok:
                results.fail(f"verifying download {label}: {verify.detail}")
        source.unlink()


def run_stream_upload(
    results: Results, sampler: ClusterSampler, runner: asyncio.Runner, url: str
) -> None:
    size = results.profile.stream_size
    label = size_label(size)
    seed = 4242
    say(f"hashing the {label} generated stream (client side, untimed)")
    expected = pattern_md5(size, seed)
    settle()
    say(f"upload {label} streamed from a generator (aiohttp)")
    with sampler.phase(f"stream upload {label}") as phase:
        up = runner.run(stream_upload(url, f"stream-{size}", size, seed, expected))
    results.transfers.append(TransferRecord(up, phase, 0))
    results.rss.append(RssCase("upload", size, up.method, phase))
    if not up.ok:
        results.fail(f"streamed upload {label}: {up.detail}")


def run_benchmark(results: Results, workdir: Path) -> None:
    cluster_dir = workdir / "cluster"
    compile_sources(ROOT / "src")
    say(f"starting {NODES} nodes + gateway ({REDUNDANCY}) in {cluster_dir}")
    with ExitStack() as stack:
        cluster = stack.enter_context(
            running_cluster(
                cluster_dir, nodes=NODES, redundancy=REDUNDANCY, gateway_args=OPEN_GATEWAY_ARGS
            )
        )
        stack.callback(say, "stopping the cluster")
        stack.callback(ignore_interrupts)
        gateway_pid = cluster.gateway_pids()[0]
        # Peaks from the kernel (VmHWM, reset at each phase's start), not sampled.
        nodes = [cluster.node_pid(i) for i in range(NODES)]
        sampler = ClusterSampler(gateway_pid, nodes, kernel_peaks=True)
        sampler.start()
        stack.callback(sampler.stop)
        runner = stack.enter_context(asyncio.Runner(loop_factory=uvloop.new_event_loop))
        say(f"cluster up at {cluster.url}")

        with sampler.phase("idle") as idle:
            time.sleep(1.0)
        results.idle = idle
        run_ops(results, sampler, runner, cluster.url)
        run_transfers(results, sampler, cluster.url, workdir)
        run_stream_upload(results, sampler, runner, cluster.url)
