"""A node added to a running LocalCluster with arguments of its own (here ``--capacity``) keeps
them when it is killed and started again, as a fault test or benchmark restarts it: real node
processes, the capacity read back from the gateway's node table."""

from __future__ import annotations

import json
import time
from pathlib import Path

from conftest import ClusterOptions, cluster_in, gateway_client, wait_live_nodes

from diststorage.client import Client
from diststorage.local import free_port

SMALL_CAPACITY = 48 << 20
HEARD_TIMEOUT_S = 30.0


def _node_row(http: Client, address: str) -> dict[str, object]:
    response = http.request("GET", "/_/nodes")
    assert response.status == 200, response.body
    rows = {row["address"]: row for row in json.loads(response.body)}
    return dict(rows.get(address) or {})


def _capacity_heard_after(http: Client, address: str, after: str) -> object:
    """The node's capacity as it reports it in the first heartbeat after ``after`` (ISO)."""
    deadline = time.monotonic() + HEARD_TIMEOUT_S
    while time.monotonic() < deadline:
        row = _node_row(http, address)
        if str(row.get("last_heartbeat", "")) > after:
            return row.get("capacity")
        time.sleep(0.2)
    raise AssertionError(f"no heartbeat from {address} after {after}: {_node_row(http, address)}")


def test_an_added_node_keeps_its_own_arguments_across_a_restart(tmp_path: Path) -> None:
    with cluster_in(tmp_path, ClusterOptions(nodes=2, redundancy="replicate:2")) as cluster:
        http = gateway_client(cluster.url)
        wait_live_nodes(http, 2)
        port = free_port()
        address = f"{cluster.host}:{port}"
        index = cluster.add_node(port, ["--capacity", str(SMALL_CAPACITY)])
        wait_live_nodes(http, 3)
        first = _node_row(http, address)
        assert first.get("capacity") == SMALL_CAPACITY, first

        cluster.kill_node(index)
        killed_at = str(_node_row(http, address)["last_heartbeat"])
        cluster.start_node(index)
        assert _capacity_heard_after(http, address, killed_at) == SMALL_CAPACITY
