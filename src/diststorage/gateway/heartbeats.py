"""Heartbeats in: the gateway's Inventory service, where the nodes' wire messages stop.

Each beat is converted from protobuf to plain records here, once, so that the node table and
the admin API never hold a ``pb.*`` object; and our errors become gRPC statuses here, once, so
that a node is told UNAVAILABLE (try again) when the metadata database is, not UNKNOWN.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio

from diststorage.core.errors import DiststorageError, Unavailable
from diststorage.gateway.inventory import Inventory
from diststorage.meta import ChunkState, MaintenanceStore, NodeReport
from diststorage.proto import storage_pb2 as pb
from diststorage.proto.storage_pb2_grpc import InventoryServicer

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


@dataclass(frozen=True, slots=True)
class ScrubStatus:
    """A node's scrubber progress as it last reported it; named as in the wire message."""

    verified_bytes: int
    corrupt_found: int
    passes_completed: int
    last_pass_finished: float
    """Seconds since the epoch; 0 before the first pass ends."""


@dataclass(frozen=True, slots=True)
class NodeHeartbeat:
    node: NodeReport
    scrub: ScrubStatus
    corrupt_chunk_ids: tuple[str, ...]
    """Chunks the node's scrubber found corrupt, repeated until a gateway acknowledges them."""


def node_heartbeat(request: pb.HeartbeatRequest) -> NodeHeartbeat:
    status, scrub = request.status, request.status.scrub
    return NodeHeartbeat(
        node=NodeReport(
            node_id=status.node_id,
            address=status.address,
            capacity_bytes=status.capacity_bytes,
            used_bytes=status.used_bytes,
            free_bytes=status.free_bytes,
            chunk_count=status.chunk_count,
        ),
        scrub=ScrubStatus(
            verified_bytes=scrub.verified_bytes,
            corrupt_found=scrub.corrupt_found,
            passes_completed=scrub.passes_completed,
            last_pass_finished=scrub.last_pass_finished,
        ),
        corrupt_chunk_ids=tuple(request.corrupt_chunk_ids),
    )


class HeartbeatServicer(InventoryServicer):
    """Heartbeats in. Corrupt chunks a node's scrubber found are marked damaged (queued for
    repair) before they are acknowledged, so a node stops reporting only what is recorded."""

    def __init__(
        self, inventory: Inventory, maintenance: MaintenanceStore, gateway_id: str
    ) -> None:
        self._inventory = inventory
        self._maintenance = maintenance
        self._gateway_id = gateway_id
        self.scrub: dict[str, ScrubStatus] = {}
        """Latest scrub progress each node reported."""

    async def Heartbeat(  # noqa: N802 (gRPC method name)
        self, request: pb.HeartbeatRequest, context: Context
    ) -> pb.HeartbeatResponse:
        async with _status_of_errors(context):
            acknowledged = await self.receive(node_heartbeat(request))
        return pb.HeartbeatResponse(
            gateway_id=self._gateway_id, acknowledged_corrupt_chunk_ids=acknowledged
        )

    async def receive(self, beat: NodeHeartbeat) -> list[str]:
        """Records the beat; returns the corrupt chunk ids now recorded for repair.

        Raises Unavailable if the node table could not be persisted (the beat is then not
        taken into account: the node sends another one soon). Failing to record the corrupt
        chunks is not an error: they stay unacknowledged, and the node reports them again.
        """
        node_id = beat.node.node_id
        await self._inventory.heartbeat(beat.node)
        self.scrub[node_id] = beat.scrub
        corrupt = list(beat.corrupt_chunk_ids)
        if not corrupt:
            return []
        try:
            marked = await self._maintenance.mark_chunks(corrupt, ChunkState.DAMAGED)
        except DiststorageError as error:
            log.warning("could not record corrupt chunks: %s", error)
            return []
        log.warning(
            "node %s found %d corrupt chunks (%d in use, queued for repair)",
            node_id[:8],
            len(corrupt),
            marked,
        )
        return corrupt


@contextlib.asynccontextmanager
async def _status_of_errors(context: Context) -> AsyncIterator[None]:
    """Ends the call with the status that tells the node what to do about our error.

    UNAVAILABLE for an outage (the node just beats again); INTERNAL for anything else, which
    is a bug on this side, logged with its traceback. gRPC's own abort passes through.
    """
    try:
        yield
    except grpc.aio.AbortError:
        raise
    except Unavailable as exc:
        await context.abort(grpc.StatusCode.UNAVAILABLE, exc.message)
    except Exception:
        log.exception("Heartbeat failed unexpectedly")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error on the gateway")
