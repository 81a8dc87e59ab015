"""Heartbeats in: the gateway's Inventory service, where the nodes' wire messages stop.

Each beat is converted from protobuf to plain records here, once, so that the node table and
the admin API never hold a ``pb.*`` object; and our errors become gRPC statuses here, once, so
that a node is told UNAVAILABLE (try again) when the metadata database is, not UNKNOWN.

What a beat may claim is checked here too, before anything is recorded:

- its node id is 32 lowercase hex digits and its address ``HOST:PORT`` (a DNS name, an IPv4
  address or a bracketed IPv6 one, port 1-65535), or the beat is refused INVALID_ARGUMENT;
- over mutual TLS (core/cluster_tls.py), the caller's certificate names that node
  (``node:<id>``): a node can only beat as itself, and a gateway's certificate beats as no
  node (PERMISSION_DENIED). Over --insecure-cluster links nothing names the caller;
- a corrupt chunk it reports is acted on only if the metadata places it on that node, and
  then only once the gateway has read it back from that node and found it damaged
  (confirmations.py); the others are acknowledged (so the node stops repeating them) and
  never acted on.

A refused caller is logged once per claimed node and certificate, not at every beat.

A gateway of several worker processes (``pool``): a node's beats arrive over one connection,
at one worker. That worker checks the beat as above, records it, and hands it (without its
corrupt chunks, which it deals with and acknowledges itself) to ``relay``, which gets it to
the sibling workers' ``take_relayed``: every worker's node table hears every node. The answer
the node gets stays what one gateway answers: the gateway's id (the same in every worker, one
identity file) and the corrupt chunks this worker settled.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from google.protobuf.message import DecodeError

from diststorage.core.cluster_tls import NODE_ROLE, peer_identity
from diststorage.core.errors import DiststorageError, InvalidRequest, Unavailable
from diststorage.core.ids import is_valid_id
from diststorage.core.settings import split_host_port
from diststorage.gateway.confirmations import CorruptionConfirmations
from diststorage.gateway.inventory import Inventory
from diststorage.meta import NodeReport
from diststorage.proto import storage_pb2 as pb
from diststorage.proto.storage_pb2_grpc import InventoryServicer

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]

# RFC 1123 host names (with "_", which Docker and Kubernetes service names may hold) and IPv4.
_LABEL = r"[A-Za-z0-9_][A-Za-z0-9_-]{0,62}"
_HOST_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*\.?$")
_IPV6 = re.compile(r"^\[[0-9A-Fa-f:.]{2,45}\]$")
MAX_ADDRESS_CHARS = 255  # the node table's column
# Refusals remembered so each is logged once; past this many the memory starts again.
MAX_REFUSALS_LOGGED = 1024


def check_node_address(address: str) -> None:
    """Raises InvalidRequest unless ``address`` is a dialable HOST:PORT."""
    if len(address) > MAX_ADDRESS_CHARS:
        raise InvalidRequest(f"node address of {len(address)} characters")
    try:
        _, port = split_host_port(address)
    except ValueError as exc:
        raise InvalidRequest(f"node address {address[:64]!r} is not HOST:PORT") from exc
    host = address.rpartition(":")[0]  # with its brackets, which split_host_port strips
    if not 1 <= port <= 65535 or not (_HOST_NAME.match(host) or _IPV6.match(host)):
        raise InvalidRequest(f"node address {address[:64]!r} is not HOST:PORT")


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
    """The beat as plain records; raises InvalidRequest for a malformed node id or address."""
    status, scrub = request.status, request.status.scrub
    if not is_valid_id(status.node_id):
        raise InvalidRequest(f"node id {status.node_id[:64]!r} is not 32 lowercase hex digits")
    check_node_address(status.address)
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
    """Heartbeats in. Corrupt chunks a node's scrubber found are acknowledged once settled:
    read back and, if damaged, marked so (queued for repair), or found whole and kept; so a
    node stops reporting only what was dealt with."""

    def __init__(
        self,
        inventory: Inventory,
        confirmations: CorruptionConfirmations,
        gateway_id: str,
        require_node_certificate: bool = False,
        relay: Callable[[bytes], None] | None = None,
    ) -> None:
        """``require_node_certificate``: the server runs mutual TLS, so every caller has a
        certificate, and a beat must come from the node it names. ``relay``: given each
        beat recorded here, serialised without its corrupt chunks, for the sibling workers."""
        self._require_node_certificate = require_node_certificate
        self._relay = relay
        self._inventory = inventory
        self._confirmations = confirmations
        self._gateway_id = gateway_id
        self._refusals_logged: set[tuple[str, str]] = set()
        self.scrub: dict[str, ScrubStatus] = {}
        """Latest scrub progress each node reported."""

    async def Heartbeat(  # noqa: N802 (gRPC method name)
        self, request: pb.HeartbeatRequest, context: Context
    ) -> pb.HeartbeatResponse:
        async with _status_of_errors(context):
            beat = node_heartbeat(request)
            if self._require_node_certificate:
                await self._check_caller_is(beat.node.node_id, context)
            acknowledged = await self.receive(beat)
        if self._relay is not None:
            self._relay(_without_corrupt_chunks(request))
        return pb.HeartbeatResponse(
            gateway_id=self._gateway_id, acknowledged_corrupt_chunk_ids=acknowledged
        )

    async def receive(self, beat: NodeHeartbeat) -> list[str]:
        """Records the beat; returns the corrupt chunk ids dealt with, to acknowledge.

        Raises Unavailable if the node table could not be persisted (the beat is then not
        taken into account: the node sends another one soon). Failing to take in the corrupt
        chunks is not an error: they stay unacknowledged, and the node reports them again.
        """
        node_id = beat.node.node_id
        await self._inventory.heartbeat(beat.node)
        self.scrub[node_id] = beat.scrub
        if not beat.corrupt_chunk_ids:
            return []
        try:
            # Only what the metadata places on the node is read back: a node's word about
            # another's chunks must not make repair move them (and delete the originals).
            return await self._confirmations.receive(node_id, beat.corrupt_chunk_ids)
        except DiststorageError as error:
            log.warning("could not take in corrupt chunks of node %s: %s", node_id[:8], error)
            return []

    async def take_relayed(self, payload: bytes) -> None:
        """A beat a sibling worker received and checked (its caller included): recorded in
        this worker's node table. Raises InvalidRequest if it does not parse, Unavailable if
        the node table could not be persisted."""
        try:
            request = pb.HeartbeatRequest.FromString(payload)
        except DecodeError as exc:
            raise InvalidRequest("a relayed heartbeat does not parse") from exc
        beat = node_heartbeat(request)
        await self._inventory.heartbeat(beat.node)
        self.scrub[beat.node.node_id] = beat.scrub

    async def _check_caller_is(self, node_id: str, context: Context) -> None:
        """Aborts PERMISSION_DENIED unless the caller's certificate names node ``node_id``."""
        peer = peer_identity(context.auth_context())
        if peer != (NODE_ROLE, node_id):
            named = ":".join(peer) if peer else "no node"
            refusal = (node_id, named)
            if refusal not in self._refusals_logged:
                if len(self._refusals_logged) >= MAX_REFUSALS_LOGGED:
                    self._refusals_logged.clear()
                self._refusals_logged.add(refusal)
                log.warning("refused a heartbeat as node %s from a certificate of %s", *refusal)
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"the caller's certificate names {named}, not node {node_id}",
            )


def _without_corrupt_chunks(request: pb.HeartbeatRequest) -> bytes:
    relayed = pb.HeartbeatRequest(status=request.status)
    return relayed.SerializeToString()


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
    except InvalidRequest as exc:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, exc.message)
    except Exception:
        log.exception("Heartbeat failed unexpectedly")
        await context.abort(grpc.StatusCode.INTERNAL, "internal error on the gateway")
