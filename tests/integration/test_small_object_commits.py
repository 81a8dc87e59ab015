"""Small objects' commits, grouped into shared transactions by the gateway, on a real cluster
over SQLite and over PostgreSQL: every PUT answered 201 is durable (there after the gateway is
killed outright and started again), a conditional PUT that fails fails alone with its own
status while the PUTs committed beside it stand, and of racing conditional PUTs one wins
(conditional PUTs through S3: the native API's create-only is POST)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
import pytest
from botocore.exceptions import ClientError
from conftest import (
    PG_ADMIN,
    ClusterOptions,
    cluster_in,
    gateway_client,
    md5_hex,
    s3_client,
    wait_until,
)

from diststorage.client import Client, TransportError
from diststorage.core.ids import new_id
from diststorage.local import LocalCluster

PUTS = 96
CLIENTS = 24
BUCKET = "small-commits"


def _admin(statement: str) -> None:
    async def run() -> None:
        admin = await asyncpg.connect(PG_ADMIN)
        try:
            await admin.execute(statement)
        finally:
            await admin.close()

    asyncio.run(run())


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalCluster]:
    if request.param == "sqlite":
        with cluster_in(tmp_path_factory.mktemp("cluster"), ClusterOptions()) as running:
            yield running
        return
    name = f"diststorage_test_{new_id()[:12]}"
    _admin(f'CREATE DATABASE "{name}"')
    try:
        options = ClusterOptions(metadata_url=f"postgresql://postgres@127.0.0.1:5432/{name}")
        with cluster_in(tmp_path_factory.mktemp("cluster"), options) as running:
            yield running
    finally:
        _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _s3_put(s3: Any, key: str, body: bytes, conditions: dict[str, str]) -> int:
    try:
        s3.put_object(Bucket=BUCKET, Key=key, Body=body, **conditions)
    except ClientError as error:
        return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    return 200


def _native_put(cluster: LocalCluster, key: str, body: bytes, create_only: bool) -> int:
    return (
        gateway_client(cluster.url).put(key, body, method="POST" if create_only else "PUT").status
    )


def _restart_gateway(cluster: LocalCluster, http: Client) -> None:
    cluster.kill_gateway()
    cluster.start_gateway()
    assert wait_until(lambda: _answers(http), 30), "the gateway did not come back"


def _answers(http: Client) -> bool:
    try:
        return http.get("small/nothing-here").status == 404
    except TransportError:
        return False


def test_every_put_answered_201_outlives_a_killed_gateway(cluster: LocalCluster) -> None:
    http = gateway_client(cluster.url)
    assert http.put("small/taken", b"first").status == 201
    calls = [(f"small/{i:03d}", f"body {i}".encode() * 40, False) for i in range(PUTS)]
    # Between the others, so that they land in the same batches: creates over a committed key.
    for at in (10, 40, 70):
        calls[at:at] = [("small/taken", b"create over it", True)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = list(pool.map(lambda call: _native_put(cluster, *call), calls))
    assert statuses.count(201) == PUTS, statuses
    assert sorted(s for s in statuses if s != 201) == [409, 409, 409]
    _restart_gateway(cluster, http)
    for (key, body, _), status in zip(calls, statuses, strict=True):
        if status == 201:
            got = http.get(key)
            assert (got.status, got.body) == (200, body), key
            assert got.headers["ETag"] == f'"{md5_hex(body)}"'
    assert http.get("small/taken").body == b"first"


def test_conditional_puts_fail_alone_and_racing_ones_have_one_winner(
    cluster: LocalCluster,
) -> None:
    s3 = s3_client(cluster)
    s3.create_bucket(Bucket=BUCKET)
    etag = s3.put_object(Bucket=BUCKET, Key="contended", Body=b"v1")["ETag"]
    bodies = [f"v2 from client {i}".encode() for i in range(CLIENTS)]
    calls: list[tuple[str, bytes, dict[str, str]]] = [
        ("contended", body, {"IfMatch": etag}) for body in bodies
    ]
    # Beside the race: plain PUTs that must stand, and ones at a wrong ETag that must not.
    calls += [(f"plain-{i}", f"plain {i}".encode(), {}) for i in range(CLIENTS)]
    calls += [(f"plain-{i}", b"stale", {"IfMatch": f'"{"0" * 32}"'}) for i in range(3)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = list(pool.map(lambda call: _s3_put(s3, *call), calls))
    race, plain, stale = statuses[:CLIENTS], statuses[CLIENTS : 2 * CLIENTS], statuses[-3:]
    assert race.count(200) == 1 and race.count(412) == CLIENTS - 1, race
    assert plain == [200] * CLIENTS and stale == [412] * 3, (plain, stale)
    got = s3.get_object(Bucket=BUCKET, Key="contended")["Body"].read()
    assert got == bodies[race.index(200)]
    for i in range(3, CLIENTS):
        assert (
            s3.get_object(Bucket=BUCKET, Key=f"plain-{i}")["Body"].read() == f"plain {i}".encode()
        )

    creates = [("created-once", body, {"IfNoneMatch": "*"}) for body in bodies]
    with ThreadPoolExecutor(CLIENTS) as pool:
        statuses = list(pool.map(lambda call: _s3_put(s3, *call), creates))
    assert statuses.count(200) == 1 and statuses.count(412) == CLIENTS - 1, statuses
    got = s3.get_object(Bucket=BUCKET, Key="created-once")["Body"].read()
    assert got == bodies[statuses.index(200)]
