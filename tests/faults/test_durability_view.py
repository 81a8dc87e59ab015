"""The durability histogram on a real cluster: a node killed with SIGKILL moves exactly the
stripes that had a shard on it from "can lose 2 nodes" to "can lose 1", in /_/repair, in
/_/metrics and in `diststorage status`; repair brings them back to full. And `status --watch`
redraws until Ctrl-C (SIGINT) and exits cleanly.

Faults injected: SIGKILL of one node; SIGINT of the CLI.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import (
    MIB,
    TEST_ROOT,
    ClusterOptions,
    md5_hex,
    object_chunks,
    random_bytes,
    restore_nodes,
    wait_until,
)
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from diststorage.cli.status_view import status_view
from diststorage.client import Client
from diststorage.core.settings import ROOT_ACCESS_KEY_ENV, ROOT_SECRET_KEY_ENV
from diststorage.local import LocalCluster
from diststorage.testing import Faults

STRIPE = 64 * 1024
SEGMENT_STRIPES = 128
EC = "ec:4+2"
REPLICAS = "replicate:3"
# Long enough to see the node out before repair starts (the metrics snapshot is up to a few
# seconds old), short enough for a quick test.
REPAIR_GRACE_S = 8.0
HEAL_TIMEOUT_S = 90.0
# (key, policy or None for the default, size): two ec:4+2 segments of 128 and 17 stripes, one
# of 16, a replicated object of 5 stripes, and two kept inline.
OBJECTS = (
    ("view/ec-two-segments", EC, 9 * MIB + 5),
    ("view/ec-one-segment", EC, 1 * MIB),
    ("view/replicas", REPLICAS, 300 * 1024),
    ("view/inline-1", None, 100),
    ("view/inline-2", None, 2000),
)


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    # Seven nodes, so that ec:4+2 can be rebuilt in full while one is gone.
    return ClusterOptions(
        nodes=7,
        gateway_args=(
            "--stripe-size",
            str(STRIPE),
            "--node-timeout",
            "3",
            "--node-suspect",
            "1.5",
            "--repair-grace",
            str(REPAIR_GRACE_S),
            "--repair-rate",
            str(200 * MIB),
            "--durability-totals-interval",
            "1",
        ),
    )


@pytest.fixture(scope="module")
def stored(http: Client) -> dict[str, str]:
    """Key → MD5 of every object written."""
    written = {}
    for key, policy, size in OBJECTS:
        data = random_bytes(size)
        headers = {} if policy is None else {"X-Redundancy": policy}
        assert http.put(key, data, headers).status == 201
        written[key] = md5_hex(data)
    return written


@pytest.fixture
def nodes_restored(cluster: LocalCluster, http: Client) -> Iterator[None]:
    yield
    restore_nodes(cluster, http)


def stripes_in(size: int, segment: int) -> int:
    return min(SEGMENT_STRIPES, -(-size // STRIPE) - segment * SEGMENT_STRIPES)


def expected(cluster: LocalCluster, out: int | None) -> dict[str, dict[str, int]]:
    """Policy → spare → stripes, from where the metadata places each chunk: a segment with a
    chunk on node ``out`` can lose one node fewer."""
    by_policy = {EC: dict.fromkeys("210", 0), REPLICAS: dict.fromkeys("210", 0)}
    for key, policy, size in OBJECTS:
        if policy is None:
            continue
        segments: dict[int, set[int]] = {}
        for chunk in object_chunks(cluster, key):
            segments.setdefault(chunk.segment, set()).add(chunk.node)
        for segment, nodes in segments.items():
            spare = "1" if out in nodes else "2"
            by_policy[policy][spare] += stripes_in(size, segment)
    return by_policy


def histogram(repair: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {p["policy"]: p["stripes_by_spare"] for p in repair["durability"]["policies"]}


def metric_values(http: Client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = http.request("GET", "/_/metrics").body.decode()
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def metric_histogram(values: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> Any:
    found: dict[str, dict[str, int]] = {}
    for (name, labels), value in values.items():
        if name == "diststorage_stripes":
            label = dict(labels)
            found.setdefault(label["policy"], {})[label["spare"]] = int(value)
    return found


def wait_for_histogram(http: Client, want: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Waits until /_/repair and /_/metrics both show ``want``; returns the /_/repair answer."""
    seen: dict[str, Any] = {}

    def shown() -> bool:
        seen["repair"] = http.repair()
        seen["metrics"] = metric_histogram(metric_values(http))
        return histogram(seen["repair"]) == want and seen["metrics"] == want

    assert wait_until(shown, HEAL_TIMEOUT_S, 0.2), seen
    repair: dict[str, Any] = seen["repair"]
    return repair


def the_most_used_node(cluster: LocalCluster) -> int:
    """The node that holds a chunk of the most ec:4+2 segments (and so moves some stripes)."""
    held = [0] * cluster.nodes
    for key, policy, _ in OBJECTS:
        if policy == EC:
            for chunk in object_chunks(cluster, key):
                held[chunk.node] += 1
    return max(range(cluster.nodes), key=lambda n: held[n])


def rendered(health: tuple[int, dict[str, Any]], repair: dict[str, Any]) -> str:
    console = Console(record=True, width=140, color_system=None)
    console.print(status_view(health[0], health[1], repair))
    return console.export_text()


def test_a_killed_node_moves_its_stripes_to_one_spare_until_repair(
    cluster: LocalCluster, http: Client, stored: dict[str, str], nodes_restored: None
) -> None:
    full = expected(cluster, out=None)
    assert full[EC]["1"] == 0 and full[EC]["2"] == 128 + 17 + 16
    repair = wait_for_histogram(http, full)
    assert repair["durability"]["inline_objects"] == 2
    assert repair["this_gateway_leads"] is True and repair["counters_scope"] == "cluster"
    assert repair["leader"] == repair["this_gateway"]

    victim = the_most_used_node(cluster)
    degraded = expected(cluster, out=victim)
    at_risk = degraded[EC]["1"] + degraded[REPLICAS]["1"]
    assert degraded[EC]["1"] > 0
    Faults(cluster).kill_node(victim)
    repair = wait_for_histogram(http, degraded)
    metrics = metric_values(http)
    assert repair["stripes_below_target"] == at_risk
    assert metrics[("diststorage_stripes_below_target", ())] == at_risk
    assert metrics[("diststorage_fewest_spare_shards", ())] == 1
    assert metrics[("diststorage_stripes_unreadable", (("policy", EC),))] == 0
    assert metrics[("diststorage_worker_leader", ())] == 1
    text = rendered(http.health(), repair)
    assert re.search(rf"^ *{re.escape(EC)} +2 nodes +{degraded[EC]['2']} ", text, re.M), text
    assert re.search(rf"^ +1 node +{degraded[EC]['1']} ", text, re.M), text

    # Repaired: every stripe back at full spare, none of them on the dead node any more.
    healed = wait_for_histogram(http, full)
    assert healed["stripes_below_target"] == 0
    assert expected(cluster, out=victim) == full
    assert healed["segments_repaired"] > 0
    metrics = metric_values(http)
    assert metrics[("diststorage_repair_segments_total", (("outcome", "repaired"),))] > 0
    assert metrics[("diststorage_repair_bytes_total", ())] == healed["bytes_repaired"]
    for key, md5 in stored.items():
        assert md5_hex(http.get(key).body) == md5


def test_status_watch_redraws_until_ctrl_c(cluster: LocalCluster, stored: dict[str, str]) -> None:
    env = {
        **os.environ,
        ROOT_ACCESS_KEY_ENV: TEST_ROOT.access_key_id,
        ROOT_SECRET_KEY_ENV: TEST_ROOT.secret_access_key,
    }
    argv = [sys.executable, "-m", "diststorage", "status", "--watch", "--interval", "0.3"]
    watcher = subprocess.Popen(
        [*argv, "--url", cluster.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        time.sleep(3.0)
        assert watcher.poll() is None, watcher.communicate()
        watcher.send_signal(signal.SIGINT)
        out, err = watcher.communicate(timeout=15)
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert watcher.returncode == 0, err.decode()
    text = out.decode()
    assert "durability" in text and "repair" in text, text
    assert re.search(rf"^ *{re.escape(EC)} +2 nodes +{128 + 17 + 16} ", text, re.M), text
    assert re.search(r"^ *inline +\(in the database\) +2 ", text, re.M), text
    assert "Traceback" not in err.decode()
