"""A gateway started while its PostgreSQL is away (restarting, or started beside it) waits for
it and then serves, instead of exiting: the one-hour chaos soak lost a gateway whose restart
met a database restart (its first connection cut during set-up: asyncpg's "cannot switch to
state 12; another operation (2) is in progress"). Real processes: a PostgreSQL of the test's
own, stopped and started with pg_ctl, and a real gateway and nodes."""

from __future__ import annotations

from pathlib import Path

from conftest import ClusterOptions, cluster_in, gateway_client, random_bytes, wait_until

from diststorage.testing.private_postgres import private_postgres

NODES = 4
WAITING = "metadata database out of reach at start"


def test_a_gateway_started_while_its_database_is_away_waits_and_serves(tmp_path: Path) -> None:
    with private_postgres() as server:
        options = ClusterOptions(nodes=NODES, redundancy="ec:2+2", metadata_url=server.url)
        with cluster_in(tmp_path, options) as cluster:
            data = random_bytes(300_000)
            assert gateway_client(cluster.url).put("before", data).status == 201
            cluster.kill_gateway(0)
            server.stop()
            cluster.start_gateway(0)
            log = cluster.gateway_log_path(0)
            # Tries again (twice at least) and keeps running while the database is away.
            assert wait_until(lambda: log.read_text().count(WAITING) >= 2, timeout_s=30), log
            assert cluster.gateway_running(0), "the gateway gave up on the database"
            server.start()
            cluster.wait_live_nodes(NODES, timeout_s=60)
            http = gateway_client(cluster.url)
            assert http.get("before").body == data
            assert http.put("after", data).status == 201
            assert http.get("after").body == data
