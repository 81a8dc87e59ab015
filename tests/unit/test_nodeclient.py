"""The gateway's node client against in-process nodes of earlier kinds, so that gateways can be
upgraded before their nodes: one-block reads fall back to the stream on a node without
GetChunkOnce, and writes go over PutChunk on a node whose data link takes no writes (or that
has no data link), over the link otherwise."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import crc32c
import grpc
import pytest

from diststorage.core.errors import NodeUnavailable
from diststorage.core.ids import new_id
from diststorage.gateway.nodeclient import LinkChunkUpload, NodeClient
from diststorage.node import ChunkStore
from diststorage.node.datalink_server import DataLinkServer
from diststorage.node.servicer import ChunkServicer, add_chunk_service
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc

BLOCK = b"one block of an older node"


class StreamOnlyNode(pb_grpc.ChunkServiceServicer):
    """Serves GetChunk only; the generated base answers UNIMPLEMENTED for the rest."""

    def __init__(self) -> None:
        self.streams = 0

    async def GetChunk(  # noqa: N802 - names fixed by the .proto
        self, request: pb.GetChunkRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.GetChunkResponse]:
        self.streams += 1
        yield pb.GetChunkResponse(
            data=BLOCK, offset=0, block_crc32c=crc32c.crc32c(BLOCK), whole_block=True
        )


async def test_one_block_reads_fall_back_to_streams_on_a_node_without_get_chunk_once() -> None:
    node = StreamOnlyNode()  # type: ignore[abstract]  # missing methods are the point
    server = grpc.aio.server()
    pb_grpc.add_ChunkServiceServicer_to_server(node, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = NodeClient("ab" * 16, f"127.0.0.1:{port}", 5.0, 5.0, 1 << 20)
    try:
        for expected_streams in (1, 2):
            pieces = [p async for p in client.read_once("cd" * 16, 0, len(BLOCK))]
            assert [p.data for p in pieces] == [BLOCK]
            assert node.streams == expected_streams
    finally:
        await client.close()
        await server.stop(0)


class CountingNode(ChunkServicer):
    """A node as served today, counting its PutChunk calls; ``link`` says what its
    OpenDataLink answers: writes too, reads only (a node from before), or UNIMPLEMENTED."""

    def __init__(self, store: ChunkStore, server: DataLinkServer, port: int, link: str) -> None:
        super().__init__(store, "127.0.0.1:0", data_link=lambda: (port, server.open_link()))
        self.link = link
        self.put_chunks = 0

    async def PutChunk(  # noqa: N802 - names fixed by the .proto
        self, request_iterator: AsyncIterator[pb.PutChunkRequest], context: Any
    ) -> pb.PutChunkResponse:
        self.put_chunks += 1
        return await super().PutChunk(request_iterator, context)

    async def OpenDataLink(  # noqa: N802 - names fixed by the .proto
        self, request: pb.OpenDataLinkRequest, context: Any
    ) -> pb.OpenDataLinkResponse:
        if self.link == "none":
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no data link")
        response = await super().OpenDataLink(request, context)
        response.takes_puts = self.link == "writes"
        return response


@pytest.mark.parametrize("link", ["writes", "reads only", "none"])
async def test_writes_go_over_the_link_where_it_takes_them(tmp_path: Path, link: str) -> None:
    blocks = [b"a" * 70_000, b"b" * 1234]
    async with await ChunkStore.open(tmp_path / "node") as store:
        links = DataLinkServer(store, False, 16, max_frame_bytes=1 << 20)
        link_port = await links.start("127.0.0.1", 0)
        node = CountingNode(store, links, link_port, link)
        server = grpc.aio.server()
        add_chunk_service(node, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        client = NodeClient("ab" * 16, f"127.0.0.1:{port}", 5.0, 5.0, 1 << 20)
        try:
            for _ in range(2):  # the second write on what the first one learned
                chunk_id = new_id()
                upload = await client.start_put(chunk_id, sum(map(len, blocks)))
                assert isinstance(upload, LinkChunkUpload) == (link == "writes")
                for block in blocks:
                    await upload.send(block, crc32c.crc32c(block))
                receipt = await upload.finish()
                assert (receipt.chunk_id, receipt.size_bytes) == (chunk_id, 71_234)
                assert receipt.block_count == 2
                read = [bytes(p.data) async for p in client.read(chunk_id, 0, 0)]
                assert read == blocks
            assert node.put_chunks == (0 if link == "writes" else 2)
        finally:
            await client.close()
            await server.stop(0)
            await links.close()


async def test_a_call_on_a_retired_channel_is_a_node_unavailable() -> None:
    client = NodeClient("ab" * 16, "127.0.0.1:1", 5.0, 5.0, 1 << 20)
    await client.close()
    with pytest.raises(NodeUnavailable, match="closed"):
        await client.delete("cd" * 16)
