"""The gateway's composition root: builds every part from one settings object and owns the
one shutdown path (SIGTERM or SIGINT → stop listening → finish → close)."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable

import grpc.aio
from aiohttp import web

from diststorage.core.clock import SYSTEM_CLOCK, SystemClock
from diststorage.core.identity import load_or_create_identity
from diststorage.core.memory import HeapTrimmer, tune_allocator
from diststorage.core.settings import GatewaySettings, split_host_port
from diststorage.core.worker import Worker, run_worker
from diststorage.gateway.api import SERVICES, dispatch, json_errors
from diststorage.gateway.api.metrics import ApiMetrics
from diststorage.gateway.damage import DamageReports
from diststorage.gateway.inventory import HeartbeatServicer, Inventory
from diststorage.gateway.janitor import Janitor
from diststorage.gateway.nodeclient import NodeClients
from diststorage.gateway.objects import ChunkSetWriter, ObjectReader, ObjectWriter
from diststorage.gateway.objects.reader import NodePenalties
from diststorage.gateway.readers import ActiveReads
from diststorage.gateway.services import Services
from diststorage.gateway.workers.collector import GarbageCollector, UploadToucher
from diststorage.gateway.workers.lease import LeaderLease
from diststorage.gateway.workers.repair import RepairWorker
from diststorage.gateway.workers.throttle import TokenBucket
from diststorage.meta import MetadataStore
from diststorage.proto.storage_pb2_grpc import add_InventoryServicer_to_server

log = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0
MIGRATION_TIMEOUT_S = 300.0
WORKER_MAX_BACKOFF_S = 5.0


def build_http_app(services: Services) -> web.Application:
    # Metrics outermost, so they count the statuses the error middleware produced.
    app = web.Application(middlewares=[services.metrics.middleware, json_errors])
    app[SERVICES] = services
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


async def migrate_in_child(settings: GatewaySettings) -> None:
    """Runs `diststorage migrate` in a child process and waits for it.

    A child, so that Alembic never loads into this long-running process (see meta.migrate).
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "diststorage",
        "migrate",
        "--metadata",
        settings.database_url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        async with asyncio.timeout(MIGRATION_TIMEOUT_S):
            output, _ = await child.communicate()
    except TimeoutError:
        child.kill()
        await child.wait()
        raise RuntimeError(f"schema migration took longer than {MIGRATION_TIMEOUT_S} s") from None
    if child.returncode != 0:
        raise RuntimeError(f"schema migration failed:\n{output.decode(errors='replace')}")


def _start_workers(
    lease: LeaderLease, everywhere: list[Worker], leading: list[Worker]
) -> list[asyncio.Task[None]]:
    """The lease keeper; the workers every gateway runs; the workers only the leader runs.

    Their units read and write the database: once it answers again after an outage, work
    resumes within seconds, not after a node-style minute of backoff."""
    loop, clock = asyncio.get_running_loop(), SystemClock()

    def supervised(worker: Worker, may_run: Callable[[], bool]) -> asyncio.Task[None]:
        running = run_worker(worker, clock, may_run, max_backoff_s=WORKER_MAX_BACKOFF_S)
        return loop.create_task(running, name=worker.name)

    return [
        loop.create_task(lease.keep(), name="lease"),
        *(supervised(worker, lambda: True) for worker in everywhere),
        *(supervised(worker, lambda: lease.is_leader) for worker in leading),
    ]


async def serve_gateway(settings: GatewaySettings, ready: asyncio.Event | None = None) -> None:  # noqa: PLR0915
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    gateway_id = load_or_create_identity(settings.data_dir / "gateway.json")
    await migrate_in_child(settings)
    store = await MetadataStore.open(settings.database_url, settings.db_timeout_s, migrate=False)
    inventory = Inventory(store, settings.node_timeout_s, settings.effective_suspect_s)
    await inventory.load()
    clients = NodeClients(
        inventory.address_of,
        settings.rpc_timeout_s,
        settings.block_timeout_s,
        settings.max_message_bytes,
    )
    inventory.on_return(clients.reset)
    reads = ActiveReads()
    janitor = Janitor(store, inventory, clients, reads)
    damage = DamageReports(store.maintenance)
    chunk_sets = ChunkSetWriter(settings.write_stripes_in_flight, inventory, clients, janitor)
    writer = ObjectWriter(settings, store, inventory, chunk_sets, janitor, gateway_id)
    reader = ObjectReader(settings, inventory, clients, NodePenalties(SYSTEM_CLOCK), damage)
    repair = RepairWorker(
        settings,
        store.maintenance,
        inventory,
        chunk_sets,
        reader,
        janitor,
        TokenBucket(settings.repair_bytes_per_s),
    )
    collector = GarbageCollector(
        settings.gc_grace_s,
        store.maintenance,
        inventory,
        clients,
        janitor,
        writer.active_uploads,
        repair.in_flight_chunks,
    )
    toucher = UploadToucher(settings.gc_grace_s, store.maintenance, writer.active_uploads)
    heartbeats = HeartbeatServicer(inventory, store.maintenance, gateway_id)
    lease = LeaderLease(store.maintenance, gateway_id, settings.lease_ttl_s)
    services = Services(
        settings=settings,
        store=store,
        inventory=inventory,
        writer=writer,
        reader=reader,
        janitor=janitor,
        reads=reads,
        metrics=ApiMetrics(inventory),
        repair=repair,
        collector=collector,
        scrub_status=heartbeats.scrub,
        lease=lease,
    )
    grpc_server = grpc.aio.server(
        options=[("grpc.so_reuseport", 0)],
    )
    add_InventoryServicer_to_server(heartbeats, grpc_server)
    grpc_server.add_insecure_port(settings.grpc_listen)
    await grpc_server.start()

    runner = web.AppRunner(build_http_app(services), handler_cancellation=True, access_log=None)
    await runner.setup()
    host, port = split_host_port(settings.listen)
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    leading: list[Worker] = [collector, repair] if settings.repair_enabled else [collector]
    trimmer = HeapTrimmer(busy=lambda: bool(writer.active_uploads()) or reads.any())
    workers = _start_workers(lease, [toucher, trimmer], leading)
    log.info(
        "gateway %s: HTTP on %s, gRPC on %s, metadata %s",
        gateway_id[:8],
        settings.listen,
        settings.grpc_listen,
        store.dialect,
    )

    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("gateway %s shutting down", gateway_id[:8])
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        await runner.shutdown()
        await runner.cleanup()
        await grpc_server.stop(SHUTDOWN_GRACE_S)
        await janitor.close()
        await damage.close()
        await clients.close()
        await store.close()


def run_gateway(settings: GatewaySettings) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s gateway %(levelname)s %(name)s: %(message)s"
    )
    import uvloop

    tune_allocator()
    uvloop.run(serve_gateway(settings))
