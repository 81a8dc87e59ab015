"""What the daemons keep on disk is their user's alone, and no secret is on a command line.

The module's cluster is started under umask 000, where every file and folder made with the
default modes would be world-writable: the modes found after writes (0700 folders, 0600
files in the gateway's and every node's folder) are then the daemons' own doing. Command
lines are read where every local user reads them, ``/proc/PID/cmdline``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from conftest import (
    PG_ADMIN,
    ClusterOptions,
    cluster_in,
    gateway_client,
    random_bytes,
    wait_live_nodes,
)

from diststorage.client import Client
from diststorage.core.ids import new_id
from diststorage.core.settings import METADATA_URL_ENV, GatewaySettings
from diststorage.gateway.app import migrate_in_child
from diststorage.local import LocalCluster
from diststorage.testing import Faults

PASSWORD = f"pw-{new_id()[:16]}"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("private")
    # Short scrub passes, so that the scrubber's state file is written too.
    options = ClusterOptions(node_args=("--scrub-interval", "1"))
    previous = os.umask(0)
    try:
        with cluster_in(base, options) as running:
            os.umask(previous)
            yield running
    finally:
        os.umask(previous)


def modes_under(root: Path) -> dict[Path, int]:
    found = {root: stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        found[path] = stat.S_IMODE(path.lstat().st_mode)
    return found


def daemon_folders(cluster: LocalCluster) -> list[Path]:
    return [cluster.data_dir / "gateway", *map(cluster.node_data_dir, range(cluster.nodes))]


def test_folders_are_0700_and_files_0600_whatever_the_umask(
    cluster: LocalCluster, http: Client
) -> None:
    # Inline (in metadata.db), replicated and erasure-coded objects; one node restarted, so
    # that what a restart touches is checked too.
    for key, size in (("private/inline", 100), ("private/small", 50_000), ("private/ec", 3 << 20)):
        assert http.put(key, random_bytes(size)).status == 201
    Faults(cluster).kill_node(0)
    Faults(cluster).restart_node(0)
    wait_live_nodes(http, cluster.nodes)
    assert http.put("private/after-restart", random_bytes(1 << 20)).status == 201
    time.sleep(1.5)  # a scrub pass ends and saves its state

    wrong: dict[str, str] = {}
    seen: set[str] = set()
    for folder in daemon_folders(cluster):
        for path, mode in modes_under(folder).items():
            seen.add(path.name if path.is_file() and len(path.name) != 32 else path.suffix)
            wanted = 0o700 if path.is_dir() else 0o600
            if mode != wanted:
                wrong[str(path.relative_to(cluster.data_dir))] = f"{mode:04o}"
    assert not wrong, wrong
    # The files that matter were there to be checked.
    assert {"metadata.db", "gateway.json", "node.json", "lock", "scrub.json"} <= seen, seen
    gateway = cluster.data_dir / "gateway"
    assert (gateway / "metadata.db-wal").exists()
    chunk_dirs = [cluster.node_data_dir(i) / "chunks" for i in range(cluster.nodes)]
    assert sum(1 for folder in chunk_dirs for p in folder.rglob("*") if p.is_file()) >= 6


def cmdline(pid: int) -> str:
    return (Path(f"/proc/{pid}/cmdline")).read_bytes().replace(b"\0", b" ").decode()


def environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (entry.decode().partition("=") for entry in raw if entry)
    return {name: value for name, _, value in pairs}


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


def test_a_local_cluster_gives_gateways_the_database_url_in_their_environment(
    tmp_path: Path,
) -> None:
    name = f"diststorage_test_{new_id()[:12]}"
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/{name}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        options = ClusterOptions(nodes=3, redundancy="replicate:3", metadata_url=url)
        with cluster_in(tmp_path, options) as cluster:
            http = gateway_client(cluster.url)
            assert http.put("private/pg", b"x" * 200_000).status == 201
            (pid,) = cluster.gateway_pids()
            assert PASSWORD not in cmdline(pid)
            assert environment(pid)[METADATA_URL_ENV] == url
            # The gateway (and its migration child) used that database: the object is there.
            assert http.get("private/pg").status == 200
            assert not (cluster.data_dir / "gateway" / "metadata.db").exists()
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_the_migration_child_gets_the_database_url_in_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database that takes the connection and never answers: the child waits out its
    timeout, long enough to read its command line and environment."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        url = f"postgresql://diststorage:{PASSWORD}@127.0.0.1:{port}/diststorage"
        monkeypatch.setenv("DISTSTORAGE_GATEWAY_DB_TIMEOUT_S", "3")
        settings = GatewaySettings(data_dir=tmp_path, metadata_url=url)
        migration = asyncio.create_task(migrate_in_child(settings))
        child = await _child_running("migrate")
        seen_argv, seen_env = cmdline(child), environment(child)
        with pytest.raises(RuntimeError, match="schema migration failed"):
            await migration
    assert "migrate" in seen_argv
    assert PASSWORD not in seen_argv, seen_argv
    assert seen_env[METADATA_URL_ENV] == url


async def _child_running(word: str, timeout_s: float = 10.0) -> int:
    """The pid of this process's child whose command line holds ``word``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = _child_with(word)
        if found is not None:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no child running {word!r}")


def _child_with(word: str) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            line = cmdline(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and word in line.split():
            return int(entry.name)
    return None
