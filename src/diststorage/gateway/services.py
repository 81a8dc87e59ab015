"""What a request handler may use, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from diststorage.core.settings import GatewaySettings
from diststorage.gateway.api.metrics import ApiMetrics
from diststorage.gateway.inventory import Inventory
from diststorage.gateway.janitor import Janitor
from diststorage.gateway.objects import ObjectReader, ObjectWriter
from diststorage.gateway.readers import ActiveReads
from diststorage.meta import MetadataStore


@dataclass(frozen=True, slots=True)
class Services:
    settings: GatewaySettings
    store: MetadataStore
    inventory: Inventory
    writer: ObjectWriter
    reader: ObjectReader
    janitor: Janitor
    reads: ActiveReads
    metrics: ApiMetrics
