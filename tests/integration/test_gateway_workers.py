"""A gateway of two worker processes (``--workers 2``) on one set of ports: both serve, every
worker's node table hears every node (and sees a SIGKILLed one go down), a write through one
worker is read through the other, a scrape of either covers both, a worker killed outright is
restarted while the other keeps serving, and SIGTERM to the supervisor stops everything.

The cluster runs on SQLite (``diststorage up``'s database), so several processes on one
SQLite file are exercised too. The client opens a new connection per request, so the
kernel's SO_REUSEPORT hash spreads requests over the workers.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TEST_ROOT, gateway_client, random_bytes, remove_tree, wait_until
from prometheus_checks import scrape, series

from diststorage.client import Client, Response
from diststorage.local import LocalCluster
from diststorage.testing import running_cluster

NODES = 3
WORKERS = 2
SPREAD_TRIES = 200  # new connections to reach every worker at least once


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    base = tmp_path_factory.mktemp("workers")
    try:
        with running_cluster(
            base / "cluster",
            nodes=NODES,
            redundancy="replicate:2",
            gateway_args=["--node-timeout", "3"],
            root_credentials=TEST_ROOT,
            gateway_workers=WORKERS,
        ) as running:
            yield running
    finally:
        remove_tree(base)


@pytest.fixture(scope="module")
def http(cluster: LocalCluster) -> Client:
    client = gateway_client(cluster.url)
    # The second worker starts once the first serves: on a busy machine, a while later.
    assert wait_until(lambda: len(live_nodes_by_worker(client)) == WORKERS, 120)
    return client


def worker_of(response: Response) -> tuple[int, int]:
    """(index, pid) of the worker that answered."""
    value = response.header("X-Gateway-Worker")
    assert value is not None
    index, pid = value.split("/")
    return int(index), int(pid)


def live_nodes_by_worker(http: Client) -> dict[tuple[int, int], int]:
    """What each worker reached answers as its live node count, over new connections."""
    seen: dict[tuple[int, int], int] = {}
    for _ in range(SPREAD_TRIES):
        response = http.request("GET", "/_/health")
        seen[worker_of(response)] = response.json()["live_nodes"]
        if len(seen) == WORKERS:
            break
    return seen


def every_worker_sees(http: Client, live: int) -> bool:
    seen = live_nodes_by_worker(http)
    return len(seen) == WORKERS and set(seen.values()) == {live}


def test_both_worker_processes_serve(cluster: LocalCluster, http: Client) -> None:
    pids = cluster.gateway_worker_pids()
    assert len(pids) == WORKERS
    seen = live_nodes_by_worker(http)
    assert sorted(pid for _, pid in seen) == pids
    assert sorted(index for index, _ in seen) == list(range(WORKERS))


def test_every_worker_sees_every_node_up_and_a_killed_node_down(
    cluster: LocalCluster, http: Client
) -> None:
    assert wait_until(lambda: every_worker_sees(http, NODES), 30)
    cluster.kill_node(NODES - 1)
    try:
        assert wait_until(lambda: every_worker_sees(http, NODES - 1), 30)
    finally:
        cluster.start_node(NODES - 1)
    assert wait_until(lambda: every_worker_sees(http, NODES), 30)


@pytest.mark.parametrize("size", [4096, 300_000])
def test_a_write_through_one_worker_is_read_through_the_other(http: Client, size: int) -> None:
    for attempt in range(5):
        key = f"across-{size}-{attempt}"
        body = random_bytes(size)
        put = http.put(key, body)
        assert put.status in (200, 201), put.body[:200]
        writer = worker_of(put)
        for _ in range(SPREAD_TRIES):
            got = http.get(key)
            assert got.status == 200 and got.body == body
            if worker_of(got) != writer:
                return
    pytest.fail("no read was answered by another worker than the writer")


def _object_gets(exposition: bytes) -> float:
    return sum(
        value
        for labels, value in series(exposition).get("diststorage_http_requests_total", [])
        if labels.get("api") == "native"
        and labels.get("method") == "GET"
        and labels.get("route") == "object"
    )


def test_a_scrape_of_either_worker_covers_both(http: Client) -> None:
    assert http.put("counted", b"x" * 100).status in (200, 201)
    before = _object_gets(scrape(http))
    answered: set[tuple[int, int]] = set()
    for _ in range(40):
        response = http.get("counted")
        assert response.status == 200
        answered.add(worker_of(response))
    assert len(answered) == WORKERS  # the counts below are in both processes
    exposition = scrape(http)
    found = series(exposition)
    assert _object_gets(exposition) - before == 40
    assert found["diststorage_gateway_workers"] == [({}, WORKERS)]
    # The node table is the same in every worker: each node once, not once per worker.
    assert len(found["diststorage_node_up"]) == NODES
    assert dict((labels["state"], value) for labels, value in found["diststorage_nodes"]) == {
        "up": NODES,
        "down": 0,
    }


def test_a_killed_worker_is_restarted_and_the_gateway_keeps_serving(
    cluster: LocalCluster, http: Client
) -> None:
    victim = cluster.gateway_worker_pids()[1]
    os.kill(victim, signal.SIGKILL)
    # Connections the kernel had queued at the victim's sockets die with it; once it is gone
    # (reaped by the supervisor), the other worker answers every request, through the restart.
    assert wait_until(lambda: not Path(f"/proc/{victim}").exists(), 10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        assert http.request("GET", "/_/health").status == 200
    assert wait_until(
        lambda: (
            len(cluster.gateway_worker_pids()) == WORKERS
            and victim not in cluster.gateway_worker_pids()
        ),
        30,
    )
    assert wait_until(lambda: every_worker_sees(http, NODES), 60)
    pids = {pid for _, pid in live_nodes_by_worker(http)}
    assert victim not in pids and len(pids) == WORKERS
    log = cluster.gateway_log_path().read_text()
    assert f"(pid {victim}) exited with code -9: restarting it" in log


def test_sigterm_to_the_supervisor_stops_every_worker(cluster: LocalCluster) -> None:
    parent = cluster.gateway_pids()[0]
    workers = cluster.gateway_worker_pids()
    assert len(workers) == WORKERS
    os.kill(parent, signal.SIGTERM)
    assert wait_until(lambda: not cluster.gateway_running(), 30)
    for pid in [parent, *workers]:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived the gateway"
    log = cluster.gateway_log_path().read_text()
    assert "every worker stopped" in log
    assert "Traceback" not in log
