"""The HTTP routes in process: aiohttp's test client against ``build_http_app`` over a real
SQLite metadata store and fake nodes. Statuses, headers and error bodies are the contract."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from diststorage.core.credentials import new_credentials
from diststorage.core.settings import GatewaySettings
from diststorage.core.worker import Workers
from diststorage.gateway.api import build_http_app
from diststorage.gateway.api.metrics import ApiMetrics
from diststorage.gateway.auth.authenticator import KeyAuthenticator
from diststorage.gateway.datapath import NodeStats
from diststorage.gateway.janitor import Janitor
from diststorage.gateway.nodeclient import NodeClients
from diststorage.gateway.objects.multipart import Multipart
from diststorage.gateway.readers import ActiveReads
from diststorage.gateway.services import Services
from diststorage.gateway.workers.collector import GarbageCollector
from diststorage.gateway.workers.durability import DurabilityMonitor, unavailable_nodes
from diststorage.gateway.workers.lease import LeaderLease
from diststorage.gateway.workers.multipart_expiry import MultipartExpiry
from diststorage.gateway.workers.repair import RepairWorker
from diststorage.gateway.workers.throttle import TokenBucket
from diststorage.meta import DEFAULT_NAMESPACE, NO_ATTRIBUTES, ListedPart, MetadataStore
from diststorage.testing import (
    BytesBody,
    FakeClock,
    Pipeline,
    in_memory_pipeline,
    make_accounts,
    sigv4_middleware,
)

STRIPE_BYTES = 4096
ROOT = new_credentials()

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def pipeline(tmp_path: Path, sqlite_store: MetadataStore) -> Pipeline:
    settings = GatewaySettings(
        data_dir=tmp_path / "gateway",
        stripe_size_bytes=STRIPE_BYTES,
        segment_max_stripes=4,
        small_object_bytes=8192,
        inline_object_bytes=1024,
        redundancy="ec:4+2",
    )
    return await in_memory_pipeline(settings, sqlite_store, 6, FakeClock())


async def services_of(pipeline: Pipeline, parts: contextlib.AsyncExitStack) -> Services:
    """Every part a handler may use; node gRPC clients exist but are never called here."""
    settings, store, inventory = pipeline.settings, pipeline.store, pipeline.inventory
    clock = pipeline.clock
    clients = await NodeClients.open(inventory.address_of, 1.0, 1.0, settings.max_message_bytes)
    parts.push_async_callback(clients.close)
    reads = ActiveReads()
    janitor = await Janitor.open(store, inventory, clients, reads, clock)
    parts.push_async_callback(janitor.close)
    repair = RepairWorker(
        settings,
        store.maintenance,
        inventory,
        pipeline.chunk_sets,
        pipeline.reader,
        pipeline.nodes,
        TokenBucket(settings.repair_bytes_per_s),
    )
    collector = GarbageCollector(
        settings.gc_grace_s,
        store.maintenance,
        inventory,
        clients,
        janitor,
        pipeline.writer.active_uploads,
        repair.in_flight_chunks,
    )
    durability = DurabilityMonitor(
        store.maintenance,
        lambda: unavailable_nodes(inventory.node_ids(), repair.health),
        settings.default_policy,
        settings.durability_totals_interval_s,
        clock,
    )
    accounts = make_accounts(store, ROOT, clock=clock)
    authenticator = KeyAuthenticator(accounts.keys, settings.s3_region)
    return Services(
        settings=settings,
        store=store,
        inventory=inventory,
        writer=pipeline.writer,
        reader=pipeline.reader,
        multipart=Multipart(settings, store, pipeline.writer, pipeline.reader, reads, janitor),
        janitor=janitor,
        reads=reads,
        repair=repair,
        collector=collector,
        durability=durability,
        multipart_expiry=MultipartExpiry(
            settings.multipart_expiry_s, store.multipart, janitor.delete_soon, clock
        ),
        scrub_status={},
        lease=LeaderLease(store.maintenance, "9" * 32, settings.lease_ttl_s, clock),
        workers=Workers(clock),
        accounts=accounts,
        keys=accounts.keys,
        authenticator=authenticator,
        native_authenticator=authenticator.for_native(),
        node_stats=NodeStats(),
    )


@pytest.fixture
async def client(pipeline: Pipeline) -> AsyncIterator[Client]:
    async with contextlib.AsyncExitStack() as parts:
        services = await services_of(pipeline, parts)
        app = build_http_app(services, ApiMetrics(services.inventory, services.scrub_status))
        signing = [sigv4_middleware(ROOT)]
        async with TestClient(TestServer(app), middlewares=signing) as test_client:
            yield test_client


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.mark.parametrize(
    ("size", "redundancy"), [(100, "inline"), (3000, "replicate:3"), (20_000, "ec:4+2")]
)
async def test_put_then_get_head_and_delete(client: Client, size: int, redundancy: str) -> None:
    data = os.urandom(size)
    put = await client.put("/dir/a%20b", data=data, headers={"Content-Type": "text/x-test"})
    assert put.status == 201
    assert put.headers["ETag"] == f'"{md5(data)}"'
    body = await put.json()
    assert {k: body[k] for k in ("key", "size", "md5", "content_type", "redundancy")} == {
        "key": "dir/a b",
        "size": size,
        "md5": md5(data),
        "content_type": "text/x-test",
        "redundancy": redundancy,
    }
    got = await client.get("/dir/a%20b")
    assert got.status == 200
    assert await got.read() == data
    assert got.headers["Content-Type"] == "text/x-test"
    assert got.headers["X-Redundancy"] == redundancy
    assert got.headers["Accept-Ranges"] == "bytes"
    assert got.headers["ETag"] == f'"{md5(data)}"'
    ranged = await client.get("/dir/a%20b", headers={"Range": "bytes=10-"})
    assert ranged.status == 206
    assert ranged.headers["Content-Range"] == f"bytes 10-{size - 1}/{size}"
    assert await ranged.read() == data[10:]
    head = await client.head("/dir/a%20b", headers={"Range": "bytes=-5"})
    assert head.status == 206 and head.headers["Content-Length"] == "5"
    assert await head.read() == b""
    deleted = await client.delete("/dir/a%20b")
    assert deleted.status == 204
    missing = await client.get("/dir/a%20b")
    assert missing.status == 404
    assert (await missing.json())["error"] == "object_not_found"


async def test_listing_pages_through_keys(client: Client) -> None:
    for key in ("a/1", "a/2", "a/3", "b/1"):
        assert (await client.put(f"/{key}", data=b"x")).status == 201
    first = await (await client.get("/", params={"prefix": "a/", "limit": "2"})).json()
    assert [o["key"] for o in first["objects"]] == ["a/1", "a/2"]
    assert (first["truncated"], first["next_after"]) == (True, "a/2")
    rest = await (await client.get("/", params={"prefix": "a/", "after": "a/2"})).json()
    assert [o["key"] for o in rest["objects"]] == ["a/3"]
    assert (rest["truncated"], rest["next_after"]) == (False, None)


async def test_a_body_of_unknown_length_is_stored(client: Client) -> None:
    data = os.urandom(10_000)

    async def pieces() -> AsyncIterator[bytes]:
        for at in range(0, len(data), 3000):
            yield data[at : at + 3000]

    put = await client.put("/streamed", data=pieces())
    assert put.status == 201
    assert (await put.json())["redundancy"] == "ec:4+2"
    assert await (await client.get("/streamed")).read() == data


async def error_of(response: ClientResponse) -> tuple[int, dict[str, str]]:
    """The status and the error body, less its request id, once that is checked to be the
    id in the answer's X-Request-Id."""
    body = await response.json()
    assert body.pop("request_id") == response.headers["X-Request-Id"]
    return response.status, body


async def test_error_answers(client: Client) -> None:
    assert (await client.post("/once", data=b"1")).status == 201
    status, body = await error_of(await client.post("/once", data=b"2"))
    assert (status, body) == (
        409,
        {"error": "already_exists", "message": "key 'once' already exists"},
    )

    status, body = await error_of(
        await client.put("/p", data=b"x", headers={"X-Redundancy": "ec:0+1"})
    )
    assert (status, body["error"]) == (400, "invalid_redundancy")
    assert body["message"] == "ec:K+M needs K >= 1 and K+M <= 32"

    status, body = await error_of(
        await client.put("/p", data=b"x", headers={"X-Redundancy": "ec:6+2"})
    )
    # Wider than the cluster's member nodes: the client's to fix, not to retry.
    assert (status, body) == (
        400,
        {
            "error": "invalid_redundancy",
            "message": "redundancy ec:6+2 needs 8 distinct nodes; the cluster has 6",
        },
    )

    response = await client.get("/once", headers={"Range": "bytes=5-"})
    assert response.headers["Content-Range"] == "bytes */1"
    status, body = await error_of(response)
    assert (status, body) == (
        416,
        {
            "error": "range_not_satisfiable",
            "message": "range bytes=5- starts past the 1-byte object",
        },
    )

    response = await client.patch("/once")
    assert response.headers["Allow"] == "GET, HEAD, PUT, POST, DELETE"
    assert await error_of(response) == (
        405,
        {"error": "method_not_allowed", "message": "PATCH is not allowed here"},
    )
    assert await error_of(await client.put("/", data=b"x")) == (
        405,
        {"error": "method_not_allowed", "message": "PUT is not allowed here"},
    )
    assert await error_of(await client.get("/_/nope")) == (
        400,
        {"error": "invalid_key", "message": "keys under '_/' are reserved for system routes"},
    )
    assert await error_of(await client.post("/_/health")) == (
        405,
        {"error": "method_not_allowed", "message": "POST is not allowed on /_/health"},
    )
    assert await error_of(await client.get("/", params={"limit": "0"})) == (
        400,
        {"error": "invalid_request", "message": "limit must be a whole number from 1 to 1000"},
    )


async def test_system_routes(client: Client, pipeline: Pipeline) -> None:
    health = await client.get("/_/health")
    assert health.status == 200
    assert (await health.json())["status"] == "ok"
    nodes = await (await client.get("/_/nodes")).json()
    assert len(nodes) == 6
    node_id = pipeline.nodes.node(0).node_id
    drained = await client.post(f"/_/nodes/{node_id}/drain")
    assert drained.status == 202
    body = await drained.json()
    assert body["lifecycle"] == "draining"
    # Five active nodes are fewer than ec:4+2 needs: the operator is told.
    assert body["warning"] == (
        "only 5 active nodes remain and ec:4+2 needs 6 distinct ones: chunks of such objects "
        "cannot move until a node is added"
    )
    activated = await client.post(f"/_/nodes/{node_id[:6]}/activate")
    assert activated.status == 202 and "warning" not in await activated.json()
    assert (await client.get("/_/repair")).status == 200
    assert (await client.get("/_/metrics")).status == 200
    assert await error_of(await client.get("/_/nodes/ff")) == (
        404,
        {"error": "node_not_found", "message": "no node with id 'ff'"},
    )


async def test_repair_reports_the_durability_histogram_and_whose_counters_it_shows(
    client: Client,
) -> None:
    for size, key in ((20_000, "ec"), (3000, "replicas"), (100, "inline")):
        assert (await client.put(f"/{key}", data=os.urandom(size))).status == 201
    repair = await (await client.get("/_/repair")).json()
    durability = repair["durability"]
    assert durability["policies"] == [
        {
            "policy": "ec:4+2",
            "shards": 6,
            "needed": 4,
            "stripes_by_spare": {"2": -(-20_000 // STRIPE_BYTES), "1": 0, "0": 0},
            "unreadable_stripes": 0,
        },
        {
            "policy": "replicate:3",
            "shards": 3,
            "needed": 1,
            "stripes_by_spare": {"2": 1, "1": 0, "0": 0},
            "unreadable_stripes": 0,
        },
    ]
    assert durability["inline_objects"] == 1
    assert datetime.fromisoformat(durability["totals_refreshed_at"]).tzinfo is not None
    # The workers' lease was never taken here: nobody leads, and the counters are this
    # gateway's own.
    assert repair["leader"] is None and repair["this_gateway_leads"] is False
    assert repair["counters_scope"] == "this_gateway"
    assert "no gateway leads" in repair["counters_note"]


async def test_metrics_show_every_durability_series_before_the_first_snapshot(
    client: Client,
) -> None:
    text = await (await client.get("/_/metrics")).text()
    for series in (
        'diststorage_stripes{policy="ec:4+2",spare="2"} 0.0',
        'diststorage_stripes{policy="ec:4+2",spare="0"} 0.0',
        'diststorage_stripes_unreadable{policy="ec:4+2"} 0.0',
        "diststorage_stripes_below_target 0.0",
        "diststorage_fewest_spare_shards 2.0",
        "diststorage_repair_queue_segments 0.0",
        'diststorage_repair_segments_total{outcome="repaired"} 0.0',
        'diststorage_repair_segments_total{outcome="failed"} 0.0',
        "diststorage_repair_eta_seconds 0.0",
        "diststorage_worker_leader 0.0",
        "diststorage_gc_orphans_deleted_total 0.0",
        "diststorage_chunks_found_missing_total 0.0",
    ):
        assert series in text.splitlines(), series


# -- the accounts' admin routes --------------------------------------------------------------


async def test_admin_keys_are_created_listed_disabled_and_deleted(client: Client) -> None:
    created = await client.post("/_/admin/keys", json={"name": "backup", "is_admin": False})
    assert created.status == 201
    key = await created.json()
    key_id, secret = key["access_key_id"], key["secret_access_key"]
    assert len(key_id) == 20 and len(secret) == 40
    assert key["state"] == "active" and key["can_create_buckets"] is True
    listing = await client.get("/_/admin/keys")
    assert secret not in await listing.text()
    assert [k["access_key_id"] for k in await listing.json()] == [key_id]
    info = await (await client.get(f"/_/admin/keys/{key_id}")).json()
    assert info["name"] == "backup" and info["grants"] == []
    assert "secret_access_key" not in info
    disabled = await client.post(f"/_/admin/keys/{key_id}/disable")
    assert (await disabled.json())["state"] == "disabled"
    enabled = await client.post(f"/_/admin/keys/{key_id}/enable")
    assert (await enabled.json())["state"] == "active"
    assert (await client.delete(f"/_/admin/keys/{key_id}")).status == 204
    assert await error_of(await client.get(f"/_/admin/keys/{key_id}")) == (
        404,
        {"error": "key_not_found", "message": f"no access key {key_id!r}"},
    )


async def test_admin_buckets_and_grants(client: Client) -> None:
    key_id = (await (await client.post("/_/admin/keys", json={"name": "k"})).json())[
        "access_key_id"
    ]
    made = await client.post("/_/admin/buckets", json={"name": "photos", "owner": key_id})
    assert made.status == 201
    assert (await made.json())["owner"] == key_id
    names = [b["name"] for b in await (await client.get("/_/admin/buckets")).json()]
    assert names == ["default", "photos"]
    info = await (await client.get("/_/admin/buckets/photos")).json()
    assert info["grants"] == [
        {"bucket": "photos", "key": key_id, "read": True, "write": True, "owner": True}
    ]
    denied = await client.post("/_/admin/buckets/photos/deny", json={"key": key_id, "owner": True})
    assert await denied.json() == {
        "bucket": "photos",
        "key": key_id,
        "read": True,
        "write": True,
        "owner": False,
    }
    await client.post("/_/admin/buckets/photos/deny", json={"key": key_id})
    assert (await (await client.get("/_/admin/buckets/photos")).json())["grants"] == []
    allowed = await client.post("/_/admin/buckets/photos/allow", json={"key": key_id, "read": True})
    assert (await allowed.json())["read"] is True
    key_info = await (await client.get(f"/_/admin/keys/{key_id}")).json()
    assert [g["bucket"] for g in key_info["grants"]] == ["photos"]
    assert (await client.delete("/_/admin/buckets/photos")).status == 204
    assert (await client.get("/_/admin/buckets/photos")).status == 404


async def test_admin_errors(client: Client) -> None:
    made = await (await client.post("/_/admin/buckets", json={"name": "taken"})).json()
    assert made["owner"] == ROOT.access_key_id, "the caller owns what it creates"
    assert await error_of(await client.post("/_/admin/buckets", json={"name": "taken"})) == (
        409,
        {"error": "bucket_already_owned_by_you", "message": "you own the bucket 'taken' already"},
    )
    other = (await (await client.post("/_/admin/keys", json={"name": "o"})).json())["access_key_id"]
    again = {"name": "taken", "owner": other}
    assert await error_of(await client.post("/_/admin/buckets", json=again)) == (
        409,
        {"error": "bucket_already_exists", "message": "the bucket 'taken' exists already"},
    )
    status, body = await error_of(await client.post("/_/admin/buckets", json={"name": "Bad_Name"}))
    assert (status, body["error"]) == (400, "invalid_bucket_name")
    assert (await client.put("/taken-object", data=b"x")).status == 201
    status, body = await error_of(await client.delete("/_/admin/buckets/default"))
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await error_of(await client.post("/_/admin/keys", data=b"{not json"))
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await error_of(await client.post("/_/admin/keys", json={"name": 7}))
    assert (status, body["error"]) == (400, "invalid_request")
    status, body = await error_of(await client.post("/_/admin/keys", data=b"x" * 70_000))
    assert (status, body["error"]) == (413, "payload_too_large")
    status, body = await error_of(await client.delete("/_/admin/keys"))
    assert (status, body["error"]) == (405, "method_not_allowed")
    for path in ("/_/admin/keys/x/explode", "/_/admin/nothing", "/_/admin/buckets/b/disable"):
        status, body = await error_of(await client.get(path))
        assert (status, body["error"]) == (400, "invalid_key"), path
    status, body = await error_of(await client.get("/_/admin/buckets/none-such"))
    assert (status, body["error"]) == (404, "no_such_bucket")


async def test_the_native_api_reads_and_deletes_a_multipart_object(
    client: Client, pipeline: Pipeline
) -> None:
    multipart = pipeline.multipart
    upload_id = await multipart.create(DEFAULT_NAMESPACE, "mp", "text/x-mp", NO_ATTRIBUTES)
    parts = [os.urandom(5 * 1024 * 1024), os.urandom(3000)]
    listed = []
    for number, data in enumerate(parts, start=1):
        part = await multipart.upload_part(
            upload_id, DEFAULT_NAMESPACE, "mp", number, len(data), BytesBody(data)
        )
        listed.append(ListedPart(number, part.etag))
    await multipart.complete(upload_id, DEFAULT_NAMESPACE, "mp", listed)
    whole = b"".join(parts)
    etag = md5(b"".join(bytes.fromhex(md5(p)) for p in parts)) + "-2"
    got = await client.get("/mp")
    assert (got.status, got.headers["ETag"]) == (200, f'"{etag}"')
    assert await got.read() == whole
    edge = len(parts[0])
    ranged = await client.get("/mp", headers={"Range": f"bytes={edge - 2}-{edge + 1}"})
    assert ranged.status == 206 and await ranged.read() == whole[edge - 2 : edge + 2]
    assert (await client.get("/mp", headers={"Range": f"bytes={len(whole)}-"})).status == 416
    assert (await client.delete("/mp")).status == 204
    assert pipeline.nodes.chunk_ids() == set()
