"""What a request handler may use, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from diststorage.core.settings import GatewaySettings
from diststorage.core.worker import Workers
from diststorage.gateway.auth.accounts import Accounts
from diststorage.gateway.auth.keys import KeyCache
from diststorage.gateway.auth.ports import Authenticator
from diststorage.gateway.datapath import NodeStats
from diststorage.gateway.heartbeats import ScrubStatus
from diststorage.gateway.inventory import Inventory
from diststorage.gateway.janitor import Janitor
from diststorage.gateway.objects import ObjectReader, ObjectWriter
from diststorage.gateway.objects.multipart import Multipart
from diststorage.gateway.readers import ActiveReads
from diststorage.gateway.workers.collector import GarbageCollector
from diststorage.gateway.workers.durability import DurabilityMonitor
from diststorage.gateway.workers.lease import LeaderLease
from diststorage.gateway.workers.multipart_expiry import MultipartExpiry
from diststorage.gateway.workers.repair import RepairWorker
from diststorage.meta import MetadataStore


@dataclass(frozen=True, slots=True)
class Services:
    settings: GatewaySettings
    store: MetadataStore
    inventory: Inventory
    writer: ObjectWriter
    reader: ObjectReader
    multipart: Multipart
    janitor: Janitor
    reads: ActiveReads
    repair: RepairWorker
    collector: GarbageCollector
    # The durability histogram and repair backlog, and its snapshot for metrics.
    durability: DurabilityMonitor
    multipart_expiry: MultipartExpiry
    # Latest scrub progress each node reported in its heartbeat.
    scrub_status: dict[str, ScrubStatus]
    lease: LeaderLease
    # Every background loop of this gateway, for status pages (``workers.statuses()``).
    workers: Workers
    # Access keys and grants: the operator's changes, and what requests are checked against.
    accounts: Accounts
    keys: KeyCache
    # The S3 API's; the native API's takes curl's signatures as curl makes them (see
    # KeyAuthenticator.for_native).
    authenticator: Authenticator
    native_authenticator: Authenticator
    # Per node, blocks that failed verification and deadlines missed (``crc_errors(node_id)``,
    # ``deadline_misses(node_id)``), since this gateway started; also in /_/metrics.
    node_stats: NodeStats
