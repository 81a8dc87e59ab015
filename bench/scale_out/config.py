"""One configuration of the scale-out benchmark, start to finish: a PostgreSQL database of its
own if it needs one, the cluster, the measurements, and the cleanup (cluster stopped, database
dropped, folder removed) whatever happens.

Ctrl-C and SIGTERM stop a run the same way (``bench.common.interrupt``); while a configuration
cleans up, both are ignored, so that a second one cannot leave a database or processes behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import shutil
from contextlib import AsyncExitStack, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common.cli import OPEN_GATEWAY_ARGS, load_average, say
from bench.common.cpu import CpuMeter
from bench.common.interrupt import ignore_interrupts, resume_after_cleanup
from bench.common.ops import OBJECT_BYTES, Budget, get_case, put_case
from bench.common.postgres import scratch_database
from bench.common.report import scan_logs, size_label
from bench.common.sampler import settle
from bench.scale_out.measure import OPS_TIME_CAP_S, large_object
from bench.scale_out.mixed import mixed_load
from bench.scale_out.report import Config, ConfigRun, OpsRecord, Results
from diststorage.local import LocalCluster
from diststorage.testing import running_cluster

NODES = 6
REDUNDANCY = "ec:4+2"
CONCURRENCY = 32

CONFIGS = (
    Config("A", "1 gateway, SQLite", gateways=1, postgres=False, mixed_load=False),
    Config("B", "2 gateways, PostgreSQL", gateways=2, postgres=True, mixed_load=True),
)


@dataclass(frozen=True)
class Profile:
    name: str
    small_ops: int  # timed 4 KiB operations per case
    warmup_ops: int  # untimed ones before them
    transfer_bytes: int
    mixed_s: float
    clients: int
    seed: int = 1

    def to_json(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "transfer": size_label(self.transfer_bytes)}


class GatewayDied(Exception):
    """A gateway process exited during the run; nothing after that can be measured."""


def _check_gateways(cluster: LocalCluster) -> None:
    for index in range(len(cluster.gateway_ports)):
        if not cluster.gateway_running(index):
            log_path = cluster.gateway_log_path(index)
            raise GatewayDied(f"{log_path.stem} exited; see {log_path}")


@dataclass
class Bench:
    """One run: its settings, the event loop, and what it found."""

    profile: Profile
    results: Results
    runner: asyncio.Runner
    workdir: Path
    admin_url: str
    logs_out: Path | None

    def fail(self, message: str) -> None:
        self.results.failures.append(message)
        say(f"!!! FAILURE: {message}")

    def run_config(self, config: Config, source: Path, source_md5: str) -> None:
        run = ConfigRun(config)
        self.results.runs.append(run)
        folder = self.workdir / config.name
        say(f"{config.name}: {config.label}; load average {load_average()}")
        with ExitStack() as stack:
            # Undone in reverse: signals ignored, cluster stopped, database dropped, logs read,
            # folder removed, signals restored (when the run goes on).
            stack.push(resume_after_cleanup)
            stack.callback(shutil.rmtree, folder, ignore_errors=True)
            stack.callback(self._keep_logs, run, folder / "logs")
            metadata_url = None
            if config.postgres:
                databases = AsyncExitStack()
                stack.callback(self.runner.run, databases.aclose())
                database = self.runner.run(
                    databases.enter_async_context(scratch_database(self.admin_url))
                )
                stack.callback(say, f"{config.name}: dropping PostgreSQL database {database.name}")
                run.database, metadata_url = database.name, database.url
                say(f"{config.name}: created PostgreSQL database {database.name}")
            cluster = stack.enter_context(
                running_cluster(
                    folder,
                    nodes=NODES,
                    redundancy=REDUNDANCY,
                    gateways=config.gateways,
                    metadata_url=metadata_url,
                    gateway_args=OPEN_GATEWAY_ARGS,
                )
            )
            stack.callback(say, f"{config.name}: stopping the cluster")
            stack.callback(ignore_interrupts)
            say(f"{config.name}: {NODES} nodes, gateways at {', '.join(cluster.urls)}")
            self.measure(run, cluster, folder, source, source_md5)

    def _keep_logs(self, run: ConfigRun, logs: Path) -> None:
        run.log_issues = scan_logs(logs)
        if self.logs_out is not None and logs.is_dir():
            shutil.copytree(logs, self.logs_out / run.config.name, dirs_exist_ok=True)

    def measure(
        self, run: ConfigRun, cluster: LocalCluster, folder: Path, source: Path, source_md5: str
    ) -> None:
        """The 4 KiB cases, the large object and (where the configuration has it) the mixed load,
        each checked; a failure is recorded and the run goes on."""
        node_pids = [cluster.node_pid(i) for i in range(NODES)]
        meter = CpuMeter(
            cluster.gateway_pids(),
            node_pids,
            postgres=bool(run.database),
            database=run.database or None,
        )
        self.small_ops(run, cluster, meter)
        self.large_object(run, cluster, meter, folder, source, source_md5)
        if run.config.mixed_load:
            settle()
            run.mixed = self.runner.run(
                mixed_load(
                    cluster.urls,
                    self.profile.clients,
                    self.profile.mixed_s,
                    self.profile.seed,
                    meter,
                    functools.partial(_check_gateways, cluster),
                    say,
                )
            )
            self.judge_mixed(run)

    def small_ops(self, run: ConfigRun, cluster: LocalCluster, meter: CpuMeter) -> None:
        """4 KiB PUT, then GET of what it wrote, round-robin over the gateways."""
        config, profile, urls = run.config, self.profile, cluster.urls
        base = random.Random(4096).randbytes(OBJECT_BYTES)
        prefix = f"scale/{config.name}/ops"
        spread = f"round-robin over {len(urls)} gateways" if len(urls) > 1 else "1 gateway"
        settle()
        say(f"{config.name}: {profile.small_ops:,} × 4 KiB PUT, c={CONCURRENCY}, {spread}")
        put, written, cpu = self.runner.run(
            put_case(
                urls,
                base,
                prefix,
                CONCURRENCY,
                Budget(OPS_TIME_CAP_S, profile.small_ops),
                Budget(OPS_TIME_CAP_S, profile.warmup_ops),
                functools.partial(meter.measure, "PUT 4 KiB"),
            )
        )
        run.ops.append(OpsRecord(put, cpu))
        if put.errors:
            self.fail(f"{config.name} PUT: {put.errors} errors, first: {put.first_error}")
        _check_gateways(cluster)
        settle()
        say(f"{config.name}: {profile.small_ops:,} × 4 KiB GET, c={CONCURRENCY}, {spread}")
        get, cpu = self.runner.run(
            get_case(
                urls,
                base,
                prefix,
                written,
                CONCURRENCY,
                Budget(OPS_TIME_CAP_S, profile.small_ops),
                Budget(OPS_TIME_CAP_S, profile.warmup_ops),
                functools.partial(meter.measure, "GET 4 KiB"),
            )
        )
        run.ops.append(OpsRecord(get, cpu))
        if get.errors:
            self.fail(f"{config.name} GET: {get.errors} errors, first: {get.first_error}")
        _check_gateways(cluster)

    def large_object(
        self,
        run: ConfigRun,
        cluster: LocalCluster,
        meter: CpuMeter,
        folder: Path,
        source: Path,
        source_md5: str,
    ) -> None:
        """``source`` up through the first gateway, down through the last."""
        config, profile, urls = run.config, self.profile, cluster.urls
        label = size_label(profile.transfer_bytes)
        say(f"{config.name}: {label} upload via gateway 1, download via gateway {len(urls)}")
        key = f"scale/{config.name}/large"
        run.transfers = large_object(
            urls, key, source, source_md5, profile.transfer_bytes, folder, meter, settle
        )
        for record in run.transfers:
            if not record.transfer.ok:
                self.fail(
                    f"{config.name} {record.transfer.direction} {label}: {record.transfer.detail}"
                )
        _check_gateways(cluster)

    def judge_mixed(self, run: ConfigRun) -> None:
        assert run.mixed is not None
        stats = run.mixed.stats
        name = run.config.name
        errors = stats.total_errors()
        if errors:
            kinds = ", ".join(f"{k} ×{n}" for k, n in errors.most_common(3))
            self.fail(f"{name} mixed load: {sum(errors.values())} errors: {kinds}")
        if stats.md5_mismatches:
            self.fail(f"{name} mixed load: {stats.md5_mismatches} md5 mismatches")
        if stats.read_failures:
            self.fail(f"{name} mixed load: {stats.read_failures} read failures of committed keys")
        for problem in stats.problems[:5]:
            say(f"    {problem}")
