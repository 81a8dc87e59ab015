"""A heartbeat speaks only for the node its caller's certificate names, against a real gateway
and six real nodes over mutual TLS.

Every credential here is issued from the cluster's own folder, as a holder of it could: the
point is what the gateway accepts from a member of the cluster, not who may join it
(test_cluster_links.py). A beat is refused when the certificate names another node or a
gateway, or when its node id or address is malformed; a corrupt-chunk report marks only the
chunks the metadata places on the reporting node.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import grpc.aio
import pytest
from conftest import node_ids, object_chunks, random_bytes
from heartbeat_calls import (
    beat_of,
    chunk_states,
    links_as,
    node_address,
    read_metadata,
    real_status,
    send_beat,
)

from diststorage.client import Client
from diststorage.core.cluster_tls import GATEWAY_ROLE, NODE_ROLE, ClusterLinks
from diststorage.core.errors import InvalidRequest
from diststorage.core.ids import new_id
from diststorage.gateway.heartbeats import check_node_address
from diststorage.local import LocalCluster
from diststorage.meta import ChunkState
from diststorage.proto import storage_pb2 as pb

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster


def id_of_node(cluster: LocalCluster, index: int) -> str:
    (node_id,) = [i for i, n in node_ids(cluster).items() if n == index]
    return node_id


async def refused(
    links: ClusterLinks, cluster: LocalCluster, request: pb.HeartbeatRequest
) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await send_beat(links, cluster, request)
    return error.value.code()


def node_addresses_known(cluster: LocalCluster) -> dict[str, str]:
    """Node id → the address the gateway's node table holds."""
    return read_metadata(cluster, "SELECT id, address FROM nodes")


async def test_a_node_cannot_beat_as_another_node(cluster: LocalCluster) -> None:
    victim = await real_status(cluster, 0)
    rogue = pb.NodeStatus()
    rogue.CopyFrom(victim)
    rogue.address = "127.0.0.1:1"
    as_stranger = links_as(cluster, NODE_ROLE, new_id())
    assert await refused(as_stranger, cluster, beat_of(rogue)) == grpc.StatusCode.PERMISSION_DENIED
    as_other_node = links_as(cluster, NODE_ROLE, id_of_node(cluster, 1))
    code = await refused(as_other_node, cluster, beat_of(rogue))
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert node_addresses_known(cluster)[victim.node_id] == victim.address
    assert cluster.health()[1]["live_nodes"] == cluster.nodes


async def test_a_gateway_certificate_beats_as_no_node(cluster: LocalCluster) -> None:
    status = await real_status(cluster, 0)
    as_gateway = links_as(cluster, GATEWAY_ROLE, status.node_id)
    assert await refused(as_gateway, cluster, beat_of(status)) == grpc.StatusCode.PERMISSION_DENIED


async def test_a_node_beating_as_itself_is_heard(cluster: LocalCluster) -> None:
    status = await real_status(cluster, 2)
    links = links_as(cluster, NODE_ROLE, status.node_id)
    assert (await send_beat(links, cluster, beat_of(status))).gateway_id


@pytest.mark.parametrize(
    "node_id",
    ["", "not-hex!", "../../etc/passwd", "x" * 5000, "A" * 32, "0" * 31, "0" * 32 + "\n"],
)
async def test_a_malformed_node_id_is_refused(cluster: LocalCluster, node_id: str) -> None:
    status = pb.NodeStatus(node_id=node_id, address="127.0.0.1:7101", capacity_bytes=1 << 30)
    # The shape is checked before the certificate (whose name could not hold most of these).
    links = links_as(cluster, NODE_ROLE, new_id())
    assert await refused(links, cluster, beat_of(status)) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "address",
    [
        "",
        "127.0.0.1",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "../../etc/passwd:80",
        "host name:7101",
        "a" * 300 + ":7101",
        "evil.example/x:7101",
        "[not-ipv6]:7101",
    ],
)
async def test_a_malformed_node_address_is_refused(cluster: LocalCluster, address: str) -> None:
    status = await real_status(cluster, 3)
    status.address = address
    links = links_as(cluster, NODE_ROLE, status.node_id)
    assert await refused(links, cluster, beat_of(status)) == grpc.StatusCode.INVALID_ARGUMENT
    assert node_addresses_known(cluster)[status.node_id] == node_address(cluster, 3)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1:7101",
        "node1:7101",
        "diststorage-node-0.diststorage-node:7101",
        "node.example.com.:65535",
        "[::1]:7101",
        "[fd00::1:2]:1",
    ],
)
def test_what_compose_kubernetes_and_dual_stack_hosts_advertise_is_accepted(address: str) -> None:
    check_node_address(address)


def test_an_address_longer_than_the_node_table_holds_is_refused() -> None:
    with pytest.raises(InvalidRequest):
        check_node_address("a" * 250 + ".b:7101")


async def test_corrupt_reports_are_acted_on_only_for_the_reporters_own_chunks(
    cluster: LocalCluster, http: Client
) -> None:
    key = "identity/reported"
    assert http.put(key, random_bytes(300_000)).status == 201
    chunks = object_chunks(cluster, key)
    own = [c.path.name for c in chunks if c.node == 4]
    others = [c.path.name for c in chunks if c.node != 4]
    assert own and others
    status = await real_status(cluster, 4)
    links = links_as(cluster, NODE_ROLE, status.node_id)
    response = await send_beat(links, cluster, beat_of(status, [*others, *own]))
    # Another node's chunks: acknowledged at once (the node stops repeating them), never
    # read. Its own: read back first (test_corrupt_reports.py), acknowledged at a later beat.
    assert set(response.acknowledged_corrupt_chunk_ids) == set(others)
    acknowledged: set[str] = set()
    deadline = time.monotonic() + 20.0
    while not set(own) <= acknowledged and time.monotonic() < deadline:
        await asyncio.sleep(0.3)
        response = await send_beat(links, cluster, beat_of(status, own))
        acknowledged |= set(response.acknowledged_corrupt_chunk_ids)
    assert set(own) <= acknowledged
    # Sound on the reporter's disk, so read back whole: kept like the others.
    assert set(chunk_states(cluster, [*others, *own]).values()) == {ChunkState.OK}
    assert http.get(key).status == 200
