"""A gateway that could not run (SIGSTOP: what CPU starvation on a loaded machine does to it)
does not take its nodes for down when it runs again: the time it stood still is not the
nodes' silence. Before, every node looked silent on waking, and writes were refused with
503 not_enough_nodes while all six nodes were healthy."""

from __future__ import annotations

import os
import signal
import time

import pytest
from conftest import ClusterOptions, md5_hex, random_bytes

from diststorage.client import Client
from diststorage.local import LocalCluster

NODE_TIMEOUT_S = 2.0
# Several node timeouts: long enough that every node would look down on waking.
STALL_S = 4 * NODE_TIMEOUT_S


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    return ClusterOptions(gateway_args=("--node-timeout", str(NODE_TIMEOUT_S), "--no-repair"))


def test_nodes_stay_live_and_writes_go_on_after_the_gateway_stood_still(
    cluster: LocalCluster, http: Client
) -> None:
    cluster.wait_live_nodes(6)
    (gateway,) = cluster.gateway_pids()
    os.kill(gateway, signal.SIGSTOP)
    try:
        time.sleep(STALL_S)
    finally:
        os.kill(gateway, signal.SIGCONT)
    # The first answers after waking, before the nodes' next beats could be counted:
    code, health = cluster.health()
    assert (code, health["live_nodes"], health["writable_nodes"]) == (200, 6, 6), health
    body = random_bytes(3 << 20)
    stored = http.put("stall/after-wake", body)
    assert stored.status == 201, stored.body
    got = http.get("stall/after-wake")
    assert got.status == 200 and md5_hex(got.body) == md5_hex(body)
