"""The gateway's composition root: builds every part from one settings object and owns the
one shutdown path (SIGTERM or SIGINT → stop listening → finish → close).

``build_gateway(settings)`` makes a ``Gateway``; ``start`` builds its parts in order, each
entered in one exit stack as it is built, so that ``stop`` (or a failure half-way through
``start``) tears down exactly what was built, in reverse: the HTTP server stops listening and
finishes its requests, the gRPC server gets its grace, then the workers end, then the janitor,
the node clients and the metadata store close.

With ``--workers N`` (N > 1) ``processes.run_gateway`` runs no gateway itself: it becomes the
supervisor of N worker processes (``pool.supervisor``), each a ``Gateway`` with a
``WorkerRole``, on the same ports (SO_REUSEPORT: the kernel spreads connections over them).
A worker differs from a lone gateway only in what sharing the ports needs: it takes its share
of the connection and upload limits, is a contender of its own in the workers' lease (so
repair and GC run in one process), relays the heartbeats it receives to its siblings and
answers a metrics scrape with the figures of all of them (``pool``), and names itself in an
``X-Gateway-Worker: INDEX/PID`` response header. With one worker, none of this exists.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import sys
from typing import Any

import grpc.aio
from aiohttp import web

from diststorage.core.clock import SYSTEM_CLOCK, Clock, utc_now
from diststorage.core.cluster_tls import GATEWAY_ROLE, ClusterLinks, cluster_links
from diststorage.core.daemon import build_or_unwind, run_daemon, serve
from diststorage.core.errors import Unavailable
from diststorage.core.filemodes import make_private_dir
from diststorage.core.grpc_undecodable import RefuseUndecodable
from diststorage.core.identity import load_or_create_identity
from diststorage.core.memory import HeapTrimmer
from diststorage.core.settings import (
    METADATA_URL_ENV,
    GatewaySettings,
    NodeAdmission,
    split_host_port,
)
from diststorage.core.stalls import StallMeter
from diststorage.core.worker import Worker, Workers
from diststorage.gateway.api import build_http_app
from diststorage.gateway.api.errors import protocol_error_response as native_protocol_error
from diststorage.gateway.api.metrics import ApiMetrics
from diststorage.gateway.auth.accounts import Accounts
from diststorage.gateway.auth.authenticator import KeyAuthenticator
from diststorage.gateway.auth.bootstrap import load_root_key, log_root_key, open_master_key
from diststorage.gateway.auth.keys import KeyCache
from diststorage.gateway.confirmations import CorruptionConfirmations
from diststorage.gateway.damage import DamageReports
from diststorage.gateway.dashboard import mount_dashboard
from diststorage.gateway.dashboard.throughput import SAMPLE_INTERVAL_S
from diststorage.gateway.datapath import DataPathMetrics
from diststorage.gateway.events import EventLog
from diststorage.gateway.heartbeats import HeartbeatServicer
from diststorage.gateway.http.body import BODY_IDLE_TIMEOUT_S
from diststorage.gateway.http.server import GuardedRunner, RenderError, ServerLimits
from diststorage.gateway.http.uploads import UPLOAD_SLOTS, UploadLimits, UploadSlots
from diststorage.gateway.inventory import PERSIST_INTERVAL_S, Inventory
from diststorage.gateway.janitor import Janitor
from diststorage.gateway.nodeclient import NodeClients
from diststorage.gateway.objects import ChunkSetWriter, NodePenalties, ObjectReader, ObjectWriter
from diststorage.gateway.objects.multipart import Multipart
from diststorage.gateway.pool import (
    SiblingCounters,
    Siblings,
    SiblingServer,
    WorkerRole,
)
from diststorage.gateway.readers import ActiveReads
from diststorage.gateway.s3 import build_s3_app
from diststorage.gateway.s3.errors import protocol_error_response as s3_protocol_error
from diststorage.gateway.services import Services
from diststorage.gateway.workers.collector import GarbageCollector, UploadToucher
from diststorage.gateway.workers.durability import DurabilityMonitor, unavailable_nodes
from diststorage.gateway.workers.lease import LeaderLease
from diststorage.gateway.workers.multipart_expiry import MultipartExpiry
from diststorage.gateway.workers.progress import leader_figures
from diststorage.gateway.workers.repair import RepairWorker
from diststorage.gateway.workers.throttle import TokenBucket
from diststorage.meta import MetadataStore, NodeLifecycle
from diststorage.proto.storage_pb2_grpc import add_InventoryServicer_to_server

log = logging.getLogger(__name__)

MIGRATION_TIMEOUT_S = 300.0
# How long a starting gateway waits for a metadata database that is out of reach (restarting,
# failing over, or still starting beside it) before it gives up, and its pauses between tries.
DATABASE_START_WAIT_S = 60.0
DATABASE_START_FIRST_PAUSE_S = 0.5
DATABASE_START_LONGEST_PAUSE_S = 4.0
# The workers' units read and write the database: once it answers again after an outage, work
# resumes within seconds, not after a node-style minute of backoff.
WORKER_MAX_BACKOFF_S = 5.0
NODE_WARM_UP_POLL_S = 0.05


async def migrate_in_child(settings: GatewaySettings) -> None:
    """Runs `diststorage migrate` in a child process and waits for it.

    A child, so that Alembic never loads into this long-running process (see meta.migrate).
    The database URL, which may hold a password, reaches it through its environment (the
    variable its settings read), never its argv: every local user can read a command line.
    """
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "diststorage",
        "migrate",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, METADATA_URL_ENV: settings.database_url},
    )
    try:
        async with asyncio.timeout(MIGRATION_TIMEOUT_S):
            output, _ = await child.communicate()
    except TimeoutError:
        child.kill()
        await child.wait()
        raise RuntimeError(f"schema migration took longer than {MIGRATION_TIMEOUT_S} s") from None
    if child.returncode != 0:
        raise MigrationFailed(f"schema migration failed:\n{output.decode(errors='replace')}")


class MigrationFailed(RuntimeError):
    """The migration child exited with an error (a database out of reach among the causes)."""


class Gateway:
    """A gateway. After ``start``: ``gateway_id``, ``services`` (what request handlers use),
    ``metrics`` (its one metrics registry, both front ends' and the data path's) and
    ``workers`` (every background loop: the lease keeper; the workers every gateway runs;
    the workers only the leader runs)."""

    def __init__(
        self, settings: GatewaySettings, clock: Clock = SYSTEM_CLOCK, role: WorkerRole | None = None
    ) -> None:
        """``role``: this process is one worker of several (see the module docstring)."""
        self.settings = settings
        self._clock = clock
        self.role = role
        self.workers = Workers(clock, max_backoff_s=WORKER_MAX_BACKOFF_S)
        self._parts = contextlib.AsyncExitStack()
        self.events = EventLog(clock=clock)
        # How long this process stood still; the node table discounts it from nodes' silence.
        self.stalls = StallMeter(clock)

    async def start(self) -> None:
        """Migrates the schema, builds every part and starts both servers and the workers;
        returns at once. On failure, closes what it built and raises."""
        await self._build_waiting_for_database()
        if self.role is not None:
            self.role.ready_path(self.role.index).touch()
        if self.settings.anonymous:
            log.warning(
                "--anonymous: the native object API serves unsigned requests; anyone who can "
                "reach %s can read, overwrite and delete the bucket 'default'",
                self.settings.listen,
            )
        settings = self.settings
        log.info(
            "gateway %s%s: %s on %s, S3 on %s, gRPC on %s, metadata %s",
            self.gateway_id[:8],
            "" if self.role is None else f" worker {self.role.index} of {self.role.count}",
            "HTTPS" if settings.tls_cert else "HTTP",
            settings.listen,
            settings.s3_listen or "(off)",
            settings.grpc_listen,
            self.services.store.dialect,
        )

    async def _build_waiting_for_database(self) -> None:
        """Builds every part. A metadata database out of reach (the migration failing, or
        the store answering Unavailable) is tried again, what was built closed first, for up to
        ``DATABASE_START_WAIT_S``: a database restarting just as the gateway starts, or started
        beside it, costs a wait, not the gateway. Anything else ends the start at once."""
        deadline = self._clock.monotonic() + DATABASE_START_WAIT_S
        pause_s = DATABASE_START_FIRST_PAUSE_S
        while True:
            try:
                await build_or_unwind(self._parts, self._build)
                return
            except (Unavailable, MigrationFailed) as exc:
                if self._clock.monotonic() + pause_s > deadline:
                    raise
                # The migration's error is the last line of its output.
                lines = [line for line in str(exc).splitlines() if line.strip()]
                reason = lines[-1] if lines else type(exc).__name__
                log.warning(
                    "metadata database out of reach at start (%s); again in %.1f s", reason, pause_s
                )
            await self._clock.sleep(pause_s)
            pause_s = min(pause_s * 2, DATABASE_START_LONGEST_PAUSE_S)

    async def _build(self, parts: contextlib.AsyncExitStack) -> None:
        settings = self.settings
        make_private_dir(settings.data_dir)
        self.gateway_id = load_or_create_identity(settings.data_dir / "gateway.json")
        # Before the migration and the database: a gateway without its cluster credential
        # refuses to start before it touches anything.
        links = cluster_links(
            settings.cluster_dir, settings.insecure_cluster, GATEWAY_ROLE, self.gateway_id
        )
        if self.role is None or self.role.index == 0:
            # The other workers start once the first serves: the schema is current by then.
            await migrate_in_child(settings)
        store = await MetadataStore.open(
            settings.database_url, settings.db_timeout_s, migrate=False, clock=self._clock
        )
        parts.push_async_callback(store.close)
        accounts = await self._accounts(store)
        inventory = Inventory(
            store,
            settings.node_timeout_s,
            settings.effective_suspect_s,
            self._clock,
            admit_new_nodes=settings.node_admission == NodeAdmission.OPEN,
            stalls=self.stalls,
        )
        await inventory.load()
        data_path = DataPathMetrics()
        store.observe_queries(data_path.observe_query)
        clients = await NodeClients.open(
            inventory.address_of,
            settings.rpc_timeout_s,
            settings.block_timeout_s,
            settings.max_message_bytes,
            links,
            data_path,
        )
        parts.push_async_callback(clients.close)
        inventory.on_return(clients.reset)
        reads = ActiveReads()
        janitor = await Janitor.open(store, inventory, clients, reads, self._clock)
        parts.push_async_callback(janitor.close)
        damage = DamageReports(store.maintenance)
        # Opened before the servers, so closed after they finished their requests; new at
        # each try of the start, since a closed set of workers cannot open again.
        self.workers = Workers(self._clock, max_backoff_s=WORKER_MAX_BACKOFF_S)
        await self.workers.open()
        parts.push_async_callback(self.workers.aclose)
        confirmations = CorruptionConfirmations(store.maintenance, clients)
        heartbeats = await self._heartbeats(parts, inventory, confirmations, data_path, links)
        self.services = self._services(
            store, inventory, clients, reads, janitor, damage, heartbeats, accounts
        )
        await self._serve_grpc(parts, heartbeats, links)
        if self.role is not None:
            await self._hear_recent_nodes(inventory)
        await self._serve_http(parts)
        self._start_workers(damage, confirmations)

    async def _heartbeats(
        self,
        parts: contextlib.AsyncExitStack,
        inventory: Inventory,
        confirmations: CorruptionConfirmations,
        data_path: DataPathMetrics,
        links: ClusterLinks,
    ) -> HeartbeatServicer:
        """The heartbeat servicer and ``metrics``; for a worker, with the channel to its
        siblings that both use (relayed beats, merged scrapes), and its end of it serving."""
        siblings = None
        self._sibling_counters: SiblingCounters | None = None
        if self.role is not None:
            siblings = Siblings(self.role)
            parts.push_async_callback(siblings.close)
            self._sibling_counters = SiblingCounters(siblings, SAMPLE_INTERVAL_S)
        heartbeats = HeartbeatServicer(
            inventory,
            confirmations,
            self.gateway_id,
            require_node_certificate=links.secure,
            relay=None if siblings is None else siblings.relay_heartbeat,
        )
        self.metrics = ApiMetrics(
            inventory,
            heartbeats.scrub,
            data_path,
            siblings_scrape=None if siblings is None else siblings.scrape_all,
            sibling_counters=self._sibling_counters,
        )
        if self.role is not None:
            sibling_server = SiblingServer(
                self.role,
                heartbeats.take_relayed,
                self.metrics.scrape,
                self.metrics.http_scrape,
            )
            await sibling_server.start()
            parts.push_async_callback(sibling_server.stop)
        return heartbeats

    def _services(
        self,
        store: MetadataStore,
        inventory: Inventory,
        clients: NodeClients,
        reads: ActiveReads,
        janitor: Janitor,
        damage: DamageReports,
        heartbeats: HeartbeatServicer,
        accounts: Accounts,
    ) -> Services:
        settings, gateway_id = self.settings, self.gateway_id
        chunk_sets = ChunkSetWriter(settings.write_stripes_in_flight, inventory, clients, janitor)
        writer = ObjectWriter(settings, store, inventory, chunk_sets, janitor, gateway_id)
        reader = self._reader(inventory, clients, damage, store)
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
            self._clock,
        )
        authenticator = KeyAuthenticator(accounts.keys, settings.s3_region, self._clock)
        return Services(
            settings=settings,
            store=store,
            inventory=inventory,
            writer=writer,
            reader=reader,
            multipart=Multipart(settings, store, writer, reader, reads, janitor),
            janitor=janitor,
            reads=reads,
            repair=repair,
            collector=collector,
            durability=self._durability(store, inventory, repair),
            multipart_expiry=self._multipart_expiry(store, janitor),
            scrub_status=heartbeats.scrub,
            lease=self._lease(store, repair, collector),
            workers=self.workers,
            accounts=accounts,
            keys=accounts.keys,
            authenticator=authenticator,
            native_authenticator=authenticator.for_native(),
            node_stats=self.metrics.data_path.stats,
        )

    def _reader(
        self,
        inventory: Inventory,
        clients: NodeClients,
        damage: DamageReports,
        store: MetadataStore,
    ) -> ObjectReader:
        """Downloads' and repair's reader, counting bad blocks into the node stats."""
        penalties = NodePenalties(self._clock)
        stats = self.metrics.data_path.stats
        return ObjectReader(
            self.settings, inventory, clients, penalties, damage, stats, store.maintenance
        )

    def _durability(
        self, store: MetadataStore, inventory: Inventory, repair: RepairWorker
    ) -> DurabilityMonitor:
        return DurabilityMonitor(
            store.maintenance,
            lambda: unavailable_nodes(inventory.node_ids(), repair.health),
            self.settings.default_policy,
            self.settings.durability_totals_interval_s,
            self._clock,
        )

    def _lease(
        self, store: MetadataStore, repair: RepairWorker, collector: GarbageCollector
    ) -> LeaderLease:
        """The workers' lease, which publishes the leader's repair and GC figures."""
        holder = self.gateway_id if self.role is None else self.role.lease_holder(self.gateway_id)
        return LeaderLease(
            store.maintenance,
            holder,
            self.settings.lease_ttl_s,
            self._clock,
            published=lambda: leader_figures(repair, collector, self._clock),
        )

    def _multipart_expiry(self, store: MetadataStore, janitor: Janitor) -> MultipartExpiry:
        return MultipartExpiry(
            self.settings.multipart_expiry_s, store.multipart, janitor.delete_soon, self._clock
        )

    async def _accounts(self, store: MetadataStore) -> Accounts:
        """The master key (checked against the database), the root key and the key cache."""
        settings = self.settings
        master = await open_master_key(settings, store.accounts)
        root = await asyncio.to_thread(load_root_key, settings)
        log_root_key(root)
        keys = KeyCache(
            store.accounts, master, root.credentials, settings.key_cache_ttl_s, self._clock
        )
        return Accounts(store.accounts, master, keys)

    def _start_workers(self, damage: DamageReports, confirmations: CorruptionConfirmations) -> None:
        """The lease keeper and the workers every gateway runs; then those only the leader
        runs (repair only while it is enabled)."""
        services, settings = self.services, self.settings
        writer, lease = services.writer, services.lease
        toucher = UploadToucher(
            settings.gc_grace_s, services.store.maintenance, writer.active_uploads
        )
        trimmer = HeapTrimmer(busy=lambda: bool(writer.active_uploads()) or services.reads.any())
        everywhere: list[Worker] = [
            self.stalls,
            lease,
            damage,
            confirmations,
            toucher,
            trimmer,
            services.durability,
        ]
        leading: list[Worker] = [services.collector, services.multipart_expiry]
        if settings.repair_enabled:
            leading.append(services.repair)
        if self._sibling_counters is not None:
            everywhere.append(self._sibling_counters)
        for worker in everywhere:
            self.workers.start(worker)
        for worker in leading:
            self.workers.start(worker, may_run=lambda: lease.is_leader)

    async def _serve_grpc(
        self,
        parts: contextlib.AsyncExitStack,
        heartbeats: HeartbeatServicer,
        links: ClusterLinks,
    ) -> None:
        # SO_REUSEPORT only between the workers of one gateway: a lone gateway must fail to
        # start on a port another process holds, not share it.
        reuse_port = 0 if self.role is None else 1
        server = grpc.aio.server(
            options=[("grpc.so_reuseport", reuse_port)], interceptors=[RefuseUndecodable()]
        )
        add_InventoryServicer_to_server(heartbeats, server)
        links.add_port(server, self.settings.grpc_listen)
        await server.start()
        parts.push_async_callback(server.stop, self.settings.shutdown_grace_s)

    async def _serve_http(self, parts: contextlib.AsyncExitStack) -> None:
        settings = self.settings
        tls = server_tls_context(settings)
        # One set of upload slots for both front ends: the limits are the gateway's.
        uploads = UploadSlots(
            UploadLimits(
                self._share(settings.max_uploads),
                self._share(settings.max_uploads_per_client),
                settings.upload_retry_after_s,
            )
        )
        native = build_http_app(self.services, self.metrics)
        mount_dashboard(native, self.services, self.events)
        await self._serve_app(parts, native, uploads, native_protocol_error, settings.listen, tls)
        if settings.s3_listen is not None:
            s3 = build_s3_app(self.services, self.metrics.http)
            await self._serve_app(parts, s3, uploads, s3_protocol_error, settings.s3_listen, tls)

    async def _serve_app(
        self,
        parts: contextlib.AsyncExitStack,
        app: web.Application,
        uploads: UploadSlots,
        render_error: RenderError,
        listen: str,
        tls: ssl.SSLContext | None,
    ) -> None:
        settings = self.settings
        # Innermost: after the front end's guard has named the caller.
        app.middlewares.append(uploads.middleware)
        app[UPLOAD_SLOTS] = uploads
        app[BODY_IDLE_TIMEOUT_S] = settings.body_idle_timeout_s
        limits = ServerLimits(
            header_read_timeout_s=settings.header_read_timeout_s,
            keepalive_timeout_s=settings.keepalive_timeout_s,
            max_connections=self._share(settings.max_connections),
            retry_after_s=settings.upload_retry_after_s,
        )
        # auto_decompress off: a body sent with a Content-Encoding is the object's bytes as
        # the client means them (aws s3 cp --content-encoding gzip), never to be inflated.
        runner = GuardedRunner(
            app,
            limits,
            render_error,
            handler_cancellation=True,
            access_log=None,
            auto_decompress=False,
        )
        if self.role is not None:
            app.on_response_prepare.append(_worker_header(f"{self.role.index}/{os.getpid()}"))
        await runner.setup()
        parts.push_async_callback(runner.cleanup)
        host, port = split_host_port(listen)
        site = web.TCPSite(
            runner,
            host,
            port,
            reuse_address=True,
            reuse_port=self.role is not None,
            ssl_context=tls,
        )
        await site.start()
        # Before the cleanup: stop listening and let the requests in flight finish.
        parts.push_async_callback(runner.shutdown)

    async def _hear_recent_nodes(self, inventory: Inventory) -> None:
        """Before a worker takes requests: waits until it has heard every node the database
        saw beat within the node timeout (and the interval its rows are written at), at most
        that timeout (a node silent that long is down in every worker anyway). A worker
        restarted beside serving siblings would otherwise answer its first requests with no
        node up."""
        settings = self.settings
        # A row is written at least every PERSIST_INTERVAL_S per node, not at every beat: a
        # node beating now may have a row that old.
        recent_after = (
            utc_now(self._clock).timestamp() - settings.node_timeout_s - PERSIST_INTERVAL_S
        )
        expected = [
            view.info.node_id
            for view in inventory.views()
            if view.info.last_heartbeat.timestamp() > recent_after
            and view.lifecycle != NodeLifecycle.PENDING
        ]
        deadline = self._clock.monotonic() + settings.node_timeout_s
        while self._clock.monotonic() < deadline:
            if all(inventory.is_live(node_id) for node_id in expected):
                return
            await self._clock.sleep(NODE_WARM_UP_POLL_S)
        log.info("serving before every recently seen node was heard")

    def _share(self, limit: int) -> int:
        """A gateway-wide limit as this process applies it: its share when it is a worker."""
        return limit if self.role is None else self.role.share(limit)

    async def stop(self) -> None:
        log.info("gateway %s shutting down", self.gateway_id[:8])
        await self._parts.aclose()


def _worker_header(value: str) -> Any:
    async def name_worker(_request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Gateway-Worker"] = value

    return name_worker


def server_tls_context(settings: GatewaySettings) -> ssl.SSLContext | None:
    """TLS for every HTTP listener when a certificate is given; None serves plain HTTP."""
    if settings.tls_cert is None or settings.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert, settings.tls_key)
    return context


def build_gateway(settings: GatewaySettings) -> Gateway:
    return Gateway(settings)


async def serve_gateway(settings: GatewaySettings, ready: asyncio.Event | None = None) -> None:
    """Runs a gateway until SIGTERM or SIGINT, then shuts it down gracefully."""
    await serve(build_gateway(settings), ready)


def run_gateway(settings: GatewaySettings) -> None:
    """Blocking entry point of a gateway of one process: logging, allocator, uvloop, then
    ``serve_gateway`` (``processes.run_gateway`` chooses it or the supervisor)."""
    run_daemon("gateway", build_gateway(settings), settings.log_format)
