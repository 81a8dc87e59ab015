"""Two gateways on one PostgreSQL database serve one cluster: the same nodes, the same objects,
read-after-write across gateways, racing creates and replaces settled by the database, one
leader for the background workers that moves when it dies, and a gateway killed mid-upload
leaving nothing behind.

The module creates its own PostgreSQL database (127.0.0.1:5432, user postgres) and drops it at
the end, whatever happens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest
from conftest import (
    MIB,
    PG_ADMIN,
    ClusterOptions,
    chunk_files,
    cluster_in,
    gateway_client,
    md5_hex,
    random_bytes,
    start_stalled_upload,
    wait_until,
)

from diststorage.client import Client, Credentials
from diststorage.core.ids import new_id
from diststorage.local import LocalCluster

LEASE_TTL_S = 3.0
GC_GRACE_S = 3.0
KEY_CACHE_TTL_S = 5.0  # the gateways' default


async def _admin(statement: str) -> None:
    connection = await asyncpg.connect(PG_ADMIN)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    name = f"diststorage_test_{new_id()[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        options = ClusterOptions(
            gateways=2,
            metadata_url=f"postgresql://postgres@127.0.0.1:5432/{name}",
            gateway_args=(
                "--gc-grace",
                str(GC_GRACE_S),
                "--node-timeout",
                "3",
                # Each gateway counts the stripes per policy itself: soon after writes here.
                "--durability-totals-interval",
                "1",
            ),
            env={"DISTSTORAGE_GATEWAY_LEASE_TTL_S": str(LEASE_TTL_S)},
        )
        with cluster_in(tmp_path_factory.mktemp("two-gateways"), options) as running:
            yield running
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module")
def gateways(cluster: LocalCluster) -> list[Client]:
    return [gateway_client(url) for url in cluster.urls]


def test_every_gateway_shows_the_same_nodes(gateways: list[Client]) -> None:
    tables = [
        sorted((n["id"], n["address"], n["state"]) for n in http.nodes()) for http in gateways
    ]
    assert len(tables[0]) == 6
    assert tables[0] == tables[1]


def test_read_after_write_across_gateways(gateways: list[Client]) -> None:
    a, b = gateways
    for size in (0, 1000, 5 * MIB + 3):
        data = random_bytes(size)
        key = f"many/raw-{size}"
        assert a.put(key, data).status == 201
        got = b.get(key)  # at once: no cache, no propagation delay
        assert got.status == 200
        assert got.body == data
        assert b.delete(key).status == 204
        assert a.get(key).status == 404


def race(gateways: list[Client], key: str, bodies: list[bytes], method: str) -> list[int]:
    """Sends every body at once, alternating gateways; the statuses in body order."""

    def send(index: int) -> int:
        return gateways[index % 2].put(key, bodies[index], method=method).status

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, range(len(bodies))))


def test_racing_creates_through_both_gateways(gateways: list[Client]) -> None:
    for round_ in range(5):
        key = f"many/race-{round_}"
        bodies = [random_bytes(64 * 1024 + i) for i in range(6)]
        statuses = race(gateways, key, bodies, "POST")
        assert sorted(statuses) == [201] + [409] * (len(bodies) - 1), statuses
        winner = bodies[statuses.index(201)]
        assert gateways[0].get(key).body == winner
        assert gateways[1].get(key).body == winner


def test_racing_replaces_end_whole_and_losers_are_collected(
    cluster: LocalCluster, gateways: list[Client]
) -> None:
    key = "many/replaced"
    before = chunk_files(cluster)
    bodies = [random_bytes(3 * MIB + i) for i in range(6)]
    statuses = race(gateways, key, bodies, "PUT")
    assert statuses == [201] * len(bodies)
    final = gateways[0].get(key).body
    assert final in bodies  # one version, whole: never a mix
    assert gateways[1].get(key).body == final
    # Only the last version's six chunks stay.
    assert wait_until(lambda: len(chunk_files(cluster) - before) == 6, 30.0), len(
        chunk_files(cluster) - before
    )
    assert gateways[1].delete(key).status == 204


def leaders(gateways: list[Client]) -> list[tuple[object, bool]]:
    return [
        (status["leader"], status["this_gateway_leads"])
        for status in (http.repair() for http in gateways)
    ]


def one_leader(gateways: list[Client]) -> bool:
    seen = leaders(gateways)
    return seen[0][0] == seen[1][0] is not None and [lead for _, lead in seen].count(True) == 1


def test_a_follower_shows_the_leaders_repair_figures_and_the_same_durability(
    gateways: list[Client],
) -> None:
    """The backlog and durability histogram come from the database, the same on both; the
    follower's own counters are marked as its own, beside the leader's as it published them
    with its last lease renewal."""
    assert wait_until(lambda: one_leader(gateways), 2 * LEASE_TTL_S, 0.2), leaders(gateways)
    assert gateways[0].put("many/durable", random_bytes(MIB)).status == 201
    statuses: list[dict[str, Any]] = []

    def same_durability() -> bool:
        statuses[:] = [http.repair() for http in gateways]
        policies = [s["durability"]["policies"] for s in statuses]
        return bool(policies[0] == policies[1] and policies[0][0]["stripes_by_spare"]["2"] > 0)

    assert wait_until(same_durability, 10.0, 0.5), statuses
    leader, follower = sorted(statuses, key=lambda s: not s["this_gateway_leads"])
    assert (leader["counters_scope"], follower["counters_scope"]) == ("cluster", "this_gateway")
    assert "leader_figures" not in leader
    assert follower["leader"] == leader["this_gateway"] != follower["this_gateway"]
    assert leader["this_gateway"] in follower["counters_note"]
    figures = follower["leader_figures"]
    published_at = datetime.fromisoformat(figures["published_at"])
    assert (datetime.now(UTC) - published_at).total_seconds() < 2 * LEASE_TTL_S
    assert figures["state"] == leader["state"]
    for name in ("bytes_repaired", "chunks_repaired", "segments_repaired"):
        assert figures[name] == leader[name], name
    assert figures["eta_s"] is None  # nothing to repair, no progress measured
    leading = [
        "diststorage_worker_leader 1.0" in http.request("GET", "/_/metrics").body.decode()
        for http in gateways
    ]
    assert sorted(leading) == [False, True]
    assert gateways[0].delete("many/durable").status == 204


def test_one_leader_and_it_moves_when_the_leader_dies(
    cluster: LocalCluster, gateways: list[Client]
) -> None:
    def settled() -> bool:
        return one_leader(gateways)

    assert wait_until(settled, 2 * LEASE_TTL_S, 0.2), leaders(gateways)
    leader = [lead for _, lead in leaders(gateways)].index(True)
    follower = 1 - leader
    cluster.kill_gateway(leader)
    killed_at = time.monotonic()
    try:

        def taken_over() -> bool:
            holder, leads = leaders([gateways[follower]])[0]
            return leads and holder is not None

        assert wait_until(taken_over, 3 * LEASE_TTL_S, 0.2), leaders([gateways[follower]])
        took_s = time.monotonic() - killed_at
        print(f"leadership moved in {took_s:.1f} s")
        assert took_s < 2 * LEASE_TTL_S
    finally:
        cluster.start_gateway(leader)
        cluster.wait_live_nodes(6, 30.0, cluster.urls[leader])
    # The restarted gateway does not take the lease back while the other holds it.
    assert wait_until(settled, 2 * LEASE_TTL_S, 0.2)
    assert leaders(gateways)[follower][1] is True


def chunks_being_written(cluster: LocalCluster) -> int:
    return sum(
        len(list((cluster.node_data_dir(i) / "tmp").glob("*.tmp"))) for i in range(cluster.nodes)
    )


def test_a_key_disabled_on_one_gateway_is_refused_on_the_other_within_the_ttl(
    cluster: LocalCluster, gateways: list[Client]
) -> None:
    """Both gateways know the key and its grant (cached); disabling it through A reaches B
    once B's cache entry lapses: within the key cache's 5 s, not later."""
    a, _ = gateways
    made = a.accounts.create_key("revoked-elsewhere")
    key = Credentials(made["access_key_id"], made["secret_access_key"])
    a.accounts.allow("default", key.access_key_id, read=True, write=True)
    on_a, on_b = (gateway_client(url, key) for url in cluster.urls)
    assert on_a.put("many/revoked", b"x").status == 201
    assert on_b.get("many/revoked").status == 200, "B now holds the key in its cache"
    a.accounts.disable_key(key.access_key_id)
    disabled_at = time.monotonic()
    assert on_a.get("many/revoked").status == 403, "A forgets it at once"

    def refused_on_b() -> bool:
        return on_b.get("many/revoked").status == 403

    assert wait_until(refused_on_b, KEY_CACHE_TTL_S + 3.0, 0.1)
    assert time.monotonic() - disabled_at <= KEY_CACHE_TTL_S + 1.0
    assert a.delete("many/revoked").status == 204


def test_gateway_killed_mid_upload_others_serve_and_nothing_is_left(
    cluster: LocalCluster, gateways: list[Client]
) -> None:
    a, b = gateways
    kept = random_bytes(2 * MIB)
    assert b.put("many/kept", kept).status == 201
    before = chunk_files(cluster)
    keys_before = b.list_keys()
    sent = start_stalled_upload(a, "many/cut-off", 9, {"Content-Length": str(20 * MIB)})
    assert sent.wait(20)
    # The kernel buffers megabytes of a loopback upload, so what was sent may not have reached
    # gateway A yet: kill it only once its upload is being written on the nodes.
    assert wait_until(lambda: chunks_being_written(cluster) > 0, 20.0, 0.1)
    cluster.kill_gateway(0)
    try:
        # B goes on serving meanwhile.
        got = b.get("many/kept")
        assert got.status == 200 and md5_hex(got.body) == md5_hex(kept)
        assert b.get("many/cut-off").status == 404
        assert b.list_keys() == keys_before

        # B takes the lead and collects the abandoned upload after the grace period.
        def collected() -> bool:
            garbage = b.repair()["garbage"]
            return bool(garbage["uploads_collected"] >= 1)

        assert wait_until(collected, 60.0, 0.5), b.repair()
        assert wait_until(lambda: not (chunk_files(cluster) - before), 30.0, 0.5), sorted(
            map(str, chunk_files(cluster) - before)
        )
    finally:
        cluster.start_gateway(0)
        cluster.wait_live_nodes(6, 30.0, cluster.urls[0])
    assert a.get("many/kept").body == kept
    assert a.delete("many/kept").status == 204
