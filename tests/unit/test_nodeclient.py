"""The gateway's node client against an in-process node that predates GetChunkOnce: one-block
reads fall back to the stream, so gateways can be upgraded before their nodes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import crc32c
import grpc

from diststorage.gateway.nodeclient import NodeClient
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
