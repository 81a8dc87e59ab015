"""The cluster's gRPC links, against a real gateway and six real nodes: only a holder of the
cluster CA's folder gets a call through, to a node's ChunkService or to a gateway's Inventory.

A stranger is tried three ways on every port: plaintext; TLS with a leaf of its own CA (the
same shape as the cluster's, only not from its CA); TLS trusting the cluster's CA but with no
client certificate. A leaf issued from the cluster's own folder is the control: the same call
goes through, so the failures are the credentials', not the test's.
"""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import grpc.aio
import pytest

from diststorage.core.cluster_tls import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    CLUSTER_NAME,
    NODE_ROLE,
    ClusterLinks,
    issue,
    load_authority,
    new_authority,
)
from diststorage.core.datalink import ACCEPT, REFUSE, Get, Seal, encode_get, hello
from diststorage.core.ids import new_id
from diststorage.local import LocalCluster, free_port
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc

# Its tests use buckets, keys and key names of their own: the cluster may be shared.
pytestmark = pytest.mark.shared_cluster

CALL_TIMEOUT_S = 5.0
START_TIMEOUT_S = 30.0

Dial = Callable[[str], grpc.aio.Channel]


def plaintext(address: str) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(address)


def foreign_leaf(address: str) -> grpc.aio.Channel:
    """A node's leaf, well formed, from a CA of the caller's own making."""
    credential = issue(new_authority("rogue CA"), NODE_ROLE, new_id())
    return ClusterLinks(credential).channel(address)


def no_client_certificate(cluster_dir: Path) -> Dial:
    """Trusts the cluster's CA (so the server's leaf checks out) but presents no leaf."""
    ca_pem = (cluster_dir / CA_CERT_FILE).read_bytes()

    def dial(address: str) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(
            address,
            grpc.ssl_channel_credentials(root_certificates=ca_pem),
            options=[("grpc.ssl_target_name_override", CLUSTER_NAME)],
        )

    return dial


def member(cluster_dir: Path) -> Dial:
    credential = issue(load_authority(cluster_dir), NODE_ROLE, new_id())
    return lambda address: ClusterLinks(credential).channel(address)


def strangers(cluster: LocalCluster) -> dict[str, Dial]:
    return {
        "plaintext": plaintext,
        "leaf of another CA": foreign_leaf,
        "no client certificate": no_client_certificate(cluster.cluster_dir),
    }


def node_addresses(cluster: LocalCluster) -> list[str]:
    return [f"{cluster.host}:{port}" for port in cluster.node_ports]


def gateway_address(cluster: LocalCluster) -> str:
    return f"{cluster.host}:{cluster.grpc_port}"


async def node_calls(channel: grpc.aio.Channel) -> AsyncIterator[str]:
    """Every unary ChunkService call, each yielding its name once it returned."""
    stub = pb_grpc.ChunkServiceStub(channel)
    chunk_id = new_id()
    await stub.Stat(pb.StatRequest(), timeout=CALL_TIMEOUT_S)
    yield "Stat"
    await stub.ListChunks(pb.ListChunksRequest(limit=10), timeout=CALL_TIMEOUT_S)
    yield "ListChunks"
    await stub.DeleteChunk(pb.DeleteChunkRequest(chunk_id=chunk_id), timeout=CALL_TIMEOUT_S)
    yield "DeleteChunk"
    await stub.OpenDataLink(pb.OpenDataLinkRequest(), timeout=CALL_TIMEOUT_S)
    yield "OpenDataLink"


def beat(node_id: str) -> pb.HeartbeatRequest:
    status = pb.NodeStatus(
        node_id=node_id, address="127.0.0.1:1", capacity_bytes=1 << 50, free_bytes=1 << 50
    )
    return pb.HeartbeatRequest(status=status)


async def test_a_stranger_calls_no_node_rpc(cluster: LocalCluster) -> None:
    for name, dial in strangers(cluster).items():
        for address in node_addresses(cluster):
            async with dial(address) as channel:
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    async for _ in node_calls(channel):
                        pass
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, (name, address)


async def test_a_stranger_cannot_put_or_read_a_chunk(cluster: LocalCluster) -> None:
    chunk_id = new_id()
    for name, dial in strangers(cluster).items():
        async with dial(node_addresses(cluster)[0]) as channel:
            stub = pb_grpc.ChunkServiceStub(channel)
            request = pb.PutChunkOnceRequest(
                header=pb.ChunkHeader(chunk_id=chunk_id, expected_bytes=4),
                block=pb.Block(data=b"evil", crc32c=0),
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.PutChunkOnce(request, timeout=CALL_TIMEOUT_S)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, name
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.GetChunkOnce(
                    pb.GetChunkRequest(chunk_id=chunk_id, offset=0, length=4),
                    timeout=CALL_TIMEOUT_S,
                )
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, name


async def test_a_stranger_sends_no_heartbeat(cluster: LocalCluster) -> None:
    live_before = cluster.health()[1]["live_nodes"]
    for name, dial in strangers(cluster).items():
        async with dial(gateway_address(cluster)) as channel:
            stub = pb_grpc.InventoryStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Heartbeat(beat(new_id()), timeout=CALL_TIMEOUT_S)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, name
    assert cluster.health()[1]["live_nodes"] == live_before == cluster.nodes


async def test_a_holder_of_the_cluster_folder_gets_through(cluster: LocalCluster) -> None:
    """The control: the same calls, with a leaf from the cluster's CA, are answered."""
    dial = member(cluster.cluster_dir)
    for address in node_addresses(cluster):
        async with dial(address) as channel:
            answered = [name async for name in node_calls(channel)]
        assert answered == ["Stat", "ListChunks", "DeleteChunk", "OpenDataLink"]


async def frame_from(reader: asyncio.StreamReader) -> bytes:
    (length,) = struct.unpack(">I", await reader.readexactly(4))
    return await reader.readexactly(length)


async def test_a_stranger_reads_nothing_over_a_nodes_data_link(cluster: LocalCluster) -> None:
    """The data link's port is no secret (a scan finds it), nor is a link id (it crosses the
    wire in the clear); its key is, and without it no request is served."""
    for address in node_addresses(cluster):
        async with member(cluster.cluster_dir)(address) as channel:
            opened = await pb_grpc.ChunkServiceStub(channel).OpenDataLink(
                pb.OpenDataLinkRequest(), timeout=CALL_TIMEOUT_S
            )
        assert len(opened.key) == 32 and len(opened.link_id) == 16
        for link_id in (os.urandom(16), bytes(16)):
            reader, writer = await asyncio.open_connection(cluster.host, opened.port)
            writer.write(b"".join(Seal(None).frame(hello(link_id, os.urandom(32)))))
            assert await frame_from(reader) == REFUSE
            assert await reader.read() == b""
            writer.close()
        reader, writer = await asyncio.open_connection(cluster.host, opened.port)
        writer.write(b"".join(Seal(None).frame(hello(opened.link_id, os.urandom(32)))))
        assert (await frame_from(reader))[:1] == ACCEPT
        get = encode_get(Get(new_id(), 0, 0, None))
        writer.write(b"".join(Seal(os.urandom(32)).frame(get)))
        assert await reader.read() == b"", "a request sealed under another key is served"
        writer.close()


async def test_a_heartbeat_that_is_no_message_is_the_callers_mistake(
    cluster: LocalCluster,
) -> None:
    """Bytes that do not decode get INVALID_ARGUMENT from the gateway, as from a node, not
    the UNKNOWN that reads as a bug."""
    async with member(cluster.cluster_dir)(gateway_address(cluster)) as channel:
        heartbeat = channel.unary_unary("/diststorage.v1.Inventory/Heartbeat", None, None)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await heartbeat(b"\xff\xff\xff", timeout=CALL_TIMEOUT_S)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT, refused.value
    assert cluster.health()[1]["live_nodes"] == cluster.nodes


# -- starting daemons ------------------------------------------------------------------------


def run_diststorage(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "diststorage", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
    )


def finished(process: subprocess.Popen[str]) -> tuple[int, str]:
    output, _ = process.communicate(timeout=START_TIMEOUT_S)
    return process.returncode, output


def without_cluster_env() -> dict[str, str]:
    return {"DISTSTORAGE_CLUSTER_DIR": ""} if "DISTSTORAGE_CLUSTER_DIR" in os.environ else {}


@pytest.mark.parametrize("daemon", ["node", "gateway"])
def test_a_daemon_without_a_cluster_credential_refuses_to_start(
    daemon: str, tmp_path: Path
) -> None:
    port = free_port()
    listen = "--listen" if daemon == "node" else "--grpc-listen"
    code, output = finished(
        run_diststorage(
            [daemon, "--data", str(tmp_path / daemon), listen, f"127.0.0.1:{port}"],
            env=without_cluster_env(),
        )
    )
    assert code == 2, output
    assert "refusing to start without a cluster credential" in output
    assert "--insecure-cluster" in output


@pytest.mark.parametrize("daemon", ["node", "gateway"])
def test_a_daemon_given_a_folder_without_a_ca_refuses_to_start(daemon: str, tmp_path: Path) -> None:
    empty = tmp_path / "not-a-cluster"
    empty.mkdir()
    code, output = finished(
        run_diststorage(
            [daemon, "--data", str(tmp_path / daemon), "--cluster-dir", str(empty)],
            env={"DISTSTORAGE_GATEWAY_GRPC_LISTEN": f"127.0.0.1:{free_port()}"},
        )
    )
    assert code == 2, output
    # The console wraps long lines, a long path even mid-word: compare without the breaks.
    unwrapped = "".join(output.split())
    assert "refusingtostart" in unwrapped
    assert str(empty / CA_CERT_FILE).replace(" ", "") in unwrapped


def test_an_insecure_node_starts_and_says_so(tmp_path: Path) -> None:
    node = run_diststorage(
        [
            "node",
            "--insecure-cluster",
            "--data",
            str(tmp_path / "node"),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--gateway",
            f"127.0.0.1:{free_port()}",
        ]
    )
    assert node.stdout is not None
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        lines: list[str] = []
        while time.monotonic() < deadline and node.poll() is None:
            line = node.stdout.readline()
            lines.append(line)
            if "serving on" in line:
                break
        assert any("WARNING" in line and "--insecure-cluster" in line for line in lines), lines
        assert node.poll() is None, lines
    finally:
        node.terminate()
        node.communicate(timeout=START_TIMEOUT_S)


# -- cluster init ------------------------------------------------------------------------------


def test_cluster_init_writes_owner_only_files_and_keeps_an_existing_ca(tmp_path: Path) -> None:
    folder = tmp_path / "deep" / "cluster"
    previous = os.umask(0o022)
    try:
        code, output = finished(run_diststorage(["cluster", "init", str(folder)]))
    finally:
        os.umask(previous)
    assert code == 0, output
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder.parent.stat().st_mode & 0o777) == 0o700
    for name in (CA_CERT_FILE, CA_KEY_FILE):
        assert (folder / name).stat().st_mode & 0o777 == 0o600, name
    authority = load_authority(folder)
    ca_before = (folder / CA_CERT_FILE).read_bytes()

    code, output = finished(run_diststorage(["cluster", "init", str(folder)]))
    assert code == 0, output
    assert "kept" in output
    assert (folder / CA_CERT_FILE).read_bytes() == ca_before
    assert load_authority(folder).certificate == authority.certificate
