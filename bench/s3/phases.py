"""The S3 benchmark's steps against one cluster: idle, the multipart memory case, the large
transfers, the 4 KiB cases, then the in-process signature cost."""

from __future__ import annotations

import asyncio
import time
from contextlib import ExitStack
from pathlib import Path

import uvloop
from boto3.s3.transfer import TransferConfig

from bench.common.cli import say
from bench.common.curl import write_random_file
from bench.common.interrupt import ignore_interrupts
from bench.common.report import size_label
from bench.common.sampler import ClusterSampler, settle
from bench.s3.clients import AwsCliClient, Boto3Client, LargeClient, NativeClient, aws_cli_path
from bench.s3.ops import Front, OneOp, Signed, drive, fronts, get_op, put_op, session_for
from bench.s3.profile import NODES, REDUNDANCY, OpsRun, Results
from bench.s3.signing import run_signing
from bench.s3.transfers import run_memory_case, run_transfers
from diststorage.core.credentials import new_credentials
from diststorage.local import LocalCluster
from diststorage.testing import running_cluster


def large_clients(cluster: LocalCluster, workdir: Path) -> list[LargeClient]:
    """native, boto3 and (when installed) aws-cli, each signing with the root key."""
    root = cluster.root
    clients: list[LargeClient] = [
        NativeClient(cluster.url, root),
        Boto3Client(cluster.s3_url, root, TransferConfig()),
    ]
    executable = aws_cli_path()
    if executable is None:
        say("aws-cli not found: its rows are left out")
    else:
        clients.append(AwsCliClient(executable, cluster.s3_url, root, workdir / "aws"))
    return clients


async def _ops_case(
    sampler: ClusterSampler,
    front: Front,
    op: str,
    concurrency: int,
    timed_s: float,
    warmup: OneOp | None,
    timed: OneOp,
) -> OpsRun:
    async with session_for(concurrency) as session:
        if warmup is not None:
            await drive(session, concurrency, min(timed_s, 1.0), warmup)
        with sampler.phase(f"{op} 4 KiB {front.name} c={concurrency}") as phase:
            tally = await drive(session, concurrency, timed_s, timed)
    return OpsRun(
        front.name, op, tally.ops, tally.errors, tally.seconds,
        tally.percentile_ms(0.5), tally.percentile_ms(0.99), tally.first_error, phase,
    )  # fmt: skip


def run_ops(
    results: Results, sampler: ClusterSampler, runner: asyncio.Runner, cluster: LocalCluster
) -> None:
    """Each round: PUT through each front, then GET through each, the order of the fronts
    swapped from one round to the next."""
    profile = results.profile
    signer = Signed(cluster.root)
    concurrency = profile.ops_concurrency
    for round_index in range(profile.ops_rounds):
        order = fronts(cluster.url, cluster.s3_url)
        if round_index % 2:
            order.reverse()
        written: dict[str, list[int]] = {front.name: [] for front in order}
        prefix = f"bench-s3/ops-{round_index}"
        for front in order:
            settle()
            say(f"4 KiB PUT via {front.name}, concurrency {concurrency}, {profile.ops_seconds:g} s")
            warm = put_op(front, signer, f"{prefix}-warm", [])
            timed = put_op(front, signer, prefix, written[front.name])
            results.ops.append(
                runner.run(
                    _ops_case(sampler, front, "PUT", concurrency, profile.ops_seconds, warm, timed)
                )
            )
        for front in order:
            settle()
            say(f"4 KiB GET via {front.name}, concurrency {concurrency}, {profile.ops_seconds:g} s")
            indexes = sorted(written[front.name]) or [0]
            reads = get_op(front, signer, prefix, indexes)
            results.ops.append(
                runner.run(
                    _ops_case(sampler, front, "GET", concurrency, profile.ops_seconds, reads, reads)
                )
            )
    for run in results.ops:
        if run.errors:
            results.fail(f"{run.op} via {run.front}: {run.errors} errors, first: {run.first_error}")


def run_benchmark(results: Results, workdir: Path) -> None:
    profile = results.profile
    say(f"starting {NODES} nodes + gateway ({REDUNDANCY}) in {workdir / 'cluster'}")
    with ExitStack() as stack:
        cluster = stack.enter_context(
            running_cluster(workdir / "cluster", nodes=NODES, redundancy=REDUNDANCY)
        )
        stack.callback(say, "stopping the cluster")
        stack.callback(ignore_interrupts)
        gateway_pid = cluster.gateway_pids()[0]
        sampler = ClusterSampler(gateway_pid, [cluster.node_pid(i) for i in range(NODES)])
        sampler.start()
        stack.callback(sampler.stop)
        runner = stack.enter_context(asyncio.Runner(loop_factory=uvloop.new_event_loop))
        say(f"cluster up: native {cluster.url}, S3 {cluster.s3_url}")
        with sampler.phase("idle") as idle:
            time.sleep(1.0)
        results.idle = idle
        source = workdir / "source.bin"
        say(f"generating {size_label(profile.transfer_bytes)} of random data")
        source_md5 = write_random_file(source, profile.transfer_bytes, seed=profile.transfer_bytes)
        if not profile.transfers_only:
            run_memory_case(results, sampler, cluster.s3_url, cluster.root, gateway_pid, source)
        run_transfers(results, sampler, large_clients(cluster, workdir), source, source_md5)
        source.unlink()
        if profile.transfers_only:
            return
        run_ops(results, sampler, runner, cluster)
    say(f"signature verification, {profile.signing_requests} requests a case, in process")
    results.signing = run_signing(new_credentials(), profile.signing_requests)
