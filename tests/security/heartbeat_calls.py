"""Calls a member of the cluster could make, for the security tests: a credential issued from
the cluster's own folder, a node's own status read from it, a heartbeat sent with it; and the
gateway's SQLite metadata read directly (read-only) to see what a beat changed."""

from __future__ import annotations

import contextlib
import sqlite3

from diststorage.core.cluster_tls import GATEWAY_ROLE, ClusterLinks, issue, load_authority
from diststorage.core.ids import new_id
from diststorage.local import LocalCluster
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc

CALL_TIMEOUT_S = 5.0


def links_as(cluster: LocalCluster, role: str, identity: str) -> ClusterLinks:
    return ClusterLinks(issue(load_authority(cluster.cluster_dir), role, identity))


def gateway_address(cluster: LocalCluster) -> str:
    return f"{cluster.host}:{cluster.grpc_port}"


def node_address(cluster: LocalCluster, index: int) -> str:
    return f"{cluster.host}:{cluster.node_ports[index]}"


async def real_status(cluster: LocalCluster, index: int) -> pb.NodeStatus:
    """What node ``index`` says of itself (its id, address, space): a beat it could send."""
    links = links_as(cluster, GATEWAY_ROLE, new_id())
    async with links.channel(node_address(cluster, index)) as channel:
        status: pb.NodeStatus = await pb_grpc.ChunkServiceStub(channel).Stat(
            pb.StatRequest(), timeout=CALL_TIMEOUT_S
        )
        return status


async def send_beat(
    links: ClusterLinks, cluster: LocalCluster, request: pb.HeartbeatRequest
) -> pb.HeartbeatResponse:
    async with links.channel(gateway_address(cluster)) as channel:
        response: pb.HeartbeatResponse = await pb_grpc.InventoryStub(channel).Heartbeat(
            request, timeout=CALL_TIMEOUT_S
        )
        return response


def beat_of(status: pb.NodeStatus, corrupt: list[str] | None = None) -> pb.HeartbeatRequest:
    return pb.HeartbeatRequest(status=status, corrupt_chunk_ids=corrupt or [])


def read_metadata(cluster: LocalCluster, query: str, *values: str) -> dict[str, str]:
    """(key, value) rows of ``query`` on the gateway's metadata, opened read-only."""
    database = cluster.data_dir / "gateway" / "metadata.db"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        return dict(db.execute(query, values).fetchall())


def chunk_states(cluster: LocalCluster, chunk_ids: list[str]) -> dict[str, str]:
    marks = ",".join("?" * len(chunk_ids))
    return read_metadata(cluster, f"SELECT id, state FROM chunks WHERE id IN ({marks})", *chunk_ids)
