"""Operator admission of new nodes, against a real gateway and real nodes over mutual TLS.

The cluster starts as every cluster does (open admission: six nodes join on their first
beat), then its gateway restarts with ``--node-admission manual``, as an upgrade would: the
six nodes it knew stay members. A seventh node, started afterwards with a credential of the
cluster, is heard but pending: listed as such by ``GET /_/nodes`` and ``diststorage status``,
not counted live or writable, and given no shard, until ``diststorage node accept`` admits it;
from then on it takes shards, and a restarted gateway still counts it a member.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TEST_ROOT, object_chunks, random_bytes, wait_until

from diststorage.client import Client
from diststorage.core.credentials import write_credentials_file
from diststorage.local import LocalCluster
from diststorage.local.cluster import free_port

CLI_TIMEOUT_S = 60.0
OBJECTS = 8  # ec:4+2 over 7 nodes leaves a given node out of all 8 with odds of 1 in 7^8


@pytest.fixture(scope="module")
def credentials_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("creds") / "root.json"
    write_credentials_file(path, TEST_ROOT)
    return path


@pytest.fixture(scope="module")
def manual_cluster(cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The module's cluster, its gateway restarted under manual admission."""
    cluster.gateway_args += ["--node-admission", "manual"]
    restart_gateway(cluster, cluster.nodes)
    yield cluster


def member_rows(cluster: LocalCluster) -> int:
    """Nodes the gateway's database holds as members (read-only, from its SQLite file)."""
    database = cluster.data_dir / "gateway" / "metadata.db"
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        query = "SELECT count(*) FROM nodes WHERE lifecycle != 'pending'"
        count: int = connection.execute(query).fetchone()[0]
        return count
    finally:
        connection.close()


def restart_gateway(cluster: LocalCluster, live_nodes: int) -> None:
    # A node counts live from its first beat, a moment before its row is committed: a gateway
    # killed in between would meet it as a new node, pending under manual admission.
    assert wait_until(lambda: member_rows(cluster) == live_nodes, 30)
    cluster.kill_gateway()
    cluster.start_gateway()
    cluster.wait_live_nodes(live_nodes, timeout_s=60)


def cli(cluster: LocalCluster, credentials: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DISTSTORAGE_", "AWS_"))}
    return subprocess.run(
        [sys.executable, "-m", "diststorage", *args, "--url", cluster.url],
        capture_output=True,
        text=True,
        env={**env, "DISTSTORAGE_CREDENTIALS_FILE": str(credentials), "COLUMNS": "200"},
        timeout=CLI_TIMEOUT_S,
        check=False,
    )


def node_entry(http: Client, address: str) -> dict[str, Any] | None:
    return next((n for n in http.nodes() if n["address"] == address), None)


def nodes_holding(cluster: LocalCluster, http: Client, prefix: str) -> set[int]:
    """Node indices holding a chunk of the OBJECTS objects written under ``prefix``."""
    held: set[int] = set()
    for number in range(OBJECTS):
        key = f"{prefix}/{number}"
        assert http.put(key, random_bytes(200_000), {"X-Redundancy": "ec:4+2"}).status == 201
        held |= {c.node for c in object_chunks(cluster, key)}
    return held


def test_a_new_node_waits_for_acceptance_and_keeps_it(
    manual_cluster: LocalCluster, http: Client, credentials_file: Path
) -> None:
    cluster = manual_cluster
    known = cluster.nodes
    _, health = cluster.health()
    assert (health["live_nodes"], health["writable_nodes"]) == (known, known)

    newcomer = cluster.add_node(free_port())
    address = f"{cluster.host}:{cluster.node_ports[newcomer]}"
    assert wait_until(lambda: node_entry(http, address) is not None, 30)
    entry = node_entry(http, address)
    assert entry is not None
    assert (entry["lifecycle"], entry["state"]) == ("pending", "up")
    _, health = cluster.health()
    assert (health["live_nodes"], health["writable_nodes"], health["total_nodes"]) == (
        known,
        known,
        known + 1,
    )
    status = cli(cluster, credentials_file, "status")
    assert status.returncode == 0, status.stderr
    assert f"diststorage node accept {entry['id']}" in status.stdout
    assert newcomer not in nodes_holding(cluster, http, "admission/pending")

    accepted = cli(cluster, credentials_file, "node", "accept", entry["id"][:12])
    assert accepted.returncode == 0, accepted.stderr
    assert f"at {address} is accepted" in accepted.stderr  # the verbs talk on stderr
    entry = node_entry(http, address)
    assert entry is not None and entry["lifecycle"] == "active"
    cluster.wait_live_nodes(known + 1, timeout_s=10)
    assert newcomer in nodes_holding(cluster, http, "admission/accepted")

    restart_gateway(cluster, known + 1)
    _, health = cluster.health()
    assert health["writable_nodes"] == known + 1
    entry = node_entry(http, address)
    assert entry is not None and entry["lifecycle"] == "active"
    log = cluster.gateway_log_path().read_text(errors="replace")
    # One warning for the pending node, however many beats it sent while it waited.
    assert log.count(f"node {entry['id']} at {address} is pending") == 1


def test_drain_cannot_admit_a_pending_node(
    manual_cluster: LocalCluster, http: Client, credentials_file: Path
) -> None:
    cluster = manual_cluster
    newcomer = cluster.add_node(free_port())
    address = f"{cluster.host}:{cluster.node_ports[newcomer]}"
    try:
        assert wait_until(lambda: node_entry(http, address) is not None, 30)
        entry = node_entry(http, address)
        assert entry is not None and entry["lifecycle"] == "pending"
        for action in ("drain", "activate"):
            response = http.request("POST", f"/_/nodes/{entry['id']}/{action}")
            assert response.status == 409, response.body
            assert response.json()["error"] == "node_pending"
        entry = node_entry(http, address)
        assert entry is not None and entry["lifecycle"] == "pending"
    finally:
        cluster.drop_last_node()
