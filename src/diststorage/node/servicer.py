"""ChunkService over a ChunkStore: wire messages in, store calls, wire messages out.

GetChunk and GetChunkOnce answer with messages framed by ``proto/chunkwire.py`` (the block
copied once), which ``add_chunk_service`` registers to be sent as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from diststorage.core.datalink import LinkSecret
from diststorage.core.errors import InvalidRequest
from diststorage.node.chunkstore import DEFAULT_LIST_LIMIT, ChunkStore, StoreStatus
from diststorage.node.reader import BlockSlice
from diststorage.node.rpcerrors import rpc_errors
from diststorage.node.rpclog import served
from diststorage.node.scrubber import ScrubProgress
from diststorage.node.writer import CommitResult
from diststorage.proto import storage_pb2 as pb
from diststorage.proto import storage_pb2_grpc as pb_grpc
from diststorage.proto.chunkwire import encode_answer

log = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]


# The scrubber's progress, or None while it is disabled; put on the wire here, at the edge.
ScrubProgressSource = Callable[[], ScrubProgress | None]
# The data link's port and a new secret for it (node/datalink_server.py).
DataLinkSource = Callable[[], tuple[int, LinkSecret]]


def node_status(status: StoreStatus, address: str, scrub: pb.ScrubStatus) -> pb.NodeStatus:
    return pb.NodeStatus(
        node_id=status.node_id,
        address=address,
        capacity_bytes=status.capacity_bytes,
        used_bytes=status.used_bytes,
        chunk_count=status.chunk_count,
        free_bytes=status.free_bytes,
        scrub=scrub,
    )


# Served as the servicer framed them: no serializer (see add_chunk_service).
PREFRAMED_ANSWERS = frozenset({"GetChunk", "GetChunkOnce"})


def _get_response(piece: BlockSlice) -> bytes:
    return encode_answer(piece.data, piece.offset, piece.block_crc32c, piece.whole_block)


def scrub_status(progress: ScrubProgress | None) -> pb.ScrubStatus:
    """The scrubber's progress on the wire; all zeros when the scrubber is disabled."""
    if progress is None:
        return pb.ScrubStatus()
    return pb.ScrubStatus(
        verified_bytes=progress.verified_bytes,
        corrupt_found=progress.corrupt_found,
        passes_completed=progress.passes_completed,
        last_pass_finished=progress.last_pass_finished,
    )


def _put_response(result: CommitResult) -> pb.PutChunkResponse:
    return pb.PutChunkResponse(
        chunk_id=result.chunk_id, size_bytes=result.data_bytes, block_count=result.block_count
    )


class ChunkServicer(pb_grpc.ChunkServiceServicer):
    def __init__(
        self,
        store: ChunkStore,
        address: str,
        scrub: ScrubProgressSource = lambda: None,
        data_link: DataLinkSource | None = None,
    ) -> None:
        self._store = store
        self._address = address
        self._scrub = scrub
        self._data_link = data_link

    async def PutChunk(  # noqa: N802 - names fixed by the .proto
        self, request_iterator: AsyncIterator[pb.PutChunkRequest], context: Context
    ) -> pb.PutChunkResponse:
        async with served(context, "PutChunk") as call, rpc_errors(context, "PutChunk"):
            requests = aiter(request_iterator)
            first = await anext(requests, None)
            if first is None or first.WhichOneof("part") != "header":
                raise InvalidRequest("the first PutChunk message must be a header")
            header = first.header
            call.chunk_id = header.chunk_id
            writer = await self._store.open_writer(header.chunk_id, header.expected_bytes)
            async with writer:
                async for request in requests:
                    if request.WhichOneof("part") != "block":
                        raise InvalidRequest("only blocks may follow the PutChunk header")
                    await writer.write_block(request.block.data, request.block.crc32c)
                # grpc.aio ends the request stream the same way whether the client half-closed
                # or cancelled; the cancellation only arrives as CancelledError at a later await.
                # Yielding once lets an already-delivered cancellation land before the commit;
                # one that lands during the commit makes the writer delete the chunk again.
                await asyncio.sleep(0)
                result = await writer.commit()
            call.size_bytes = result.data_bytes
        return _put_response(result)

    async def PutChunkOnce(  # noqa: N802 - names fixed by the .proto
        self, request: pb.PutChunkOnceRequest, context: Context
    ) -> pb.PutChunkResponse:
        header, block = request.header, request.block
        async with (
            served(context, "PutChunkOnce", header.chunk_id) as call,
            rpc_errors(context, "PutChunkOnce"),
        ):
            writer = await self._store.open_writer(header.chunk_id, header.expected_bytes)
            async with writer:
                await writer.write_block(block.data, block.crc32c)
                result = await writer.commit()
            call.size_bytes = result.data_bytes
        return _put_response(result)

    async def GetChunk(  # type: ignore[override]  # noqa: N802 - framed GetChunkResponses
        self, request: pb.GetChunkRequest, context: Context
    ) -> AsyncIterator[bytes]:
        async with (
            served(context, "GetChunk", request.chunk_id) as call,
            rpc_errors(context, "GetChunk"),
            await self._store.open_reader(request.chunk_id) as reader,
        ):
            async for piece in reader.read(request.offset, request.length):
                call.size_bytes += len(piece.data)
                yield _get_response(piece)

    async def GetChunkOnce(  # type: ignore[override]  # noqa: N802 - a framed GetChunkResponse
        self, request: pb.GetChunkRequest, context: Context
    ) -> bytes:
        async with (
            served(context, "GetChunkOnce", request.chunk_id) as call,
            rpc_errors(context, "GetChunkOnce"),
            await self._store.open_reader(request.chunk_id) as reader,
            contextlib.aclosing(reader.read(request.offset, request.length)) as pieces,
        ):
            piece = await anext(pieces, None)
            call.size_bytes = 0 if piece is None else len(piece.data)
        # The empty message: no block in the range.
        return b"" if piece is None else _get_response(piece)

    async def OpenDataLink(  # noqa: N802 - names fixed by the .proto
        self, request: pb.OpenDataLinkRequest, context: Context
    ) -> pb.OpenDataLinkResponse:
        """Asked over the mTLS channel: the secret never crosses the network in the clear."""
        if self._data_link is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no data link on this node")
        assert self._data_link is not None
        port, secret = self._data_link()
        return pb.OpenDataLinkResponse(
            port=port, link_id=secret.link_id, key=secret.key, takes_puts=True
        )

    async def DeleteChunk(  # noqa: N802 - names fixed by the .proto
        self, request: pb.DeleteChunkRequest, context: Context
    ) -> pb.DeleteChunkResponse:
        async with (
            served(context, "DeleteChunk", request.chunk_id),
            rpc_errors(context, "DeleteChunk"),
        ):
            existed = await self._store.delete(request.chunk_id)
        return pb.DeleteChunkResponse(existed=existed)

    async def ListChunks(  # noqa: N802 - names fixed by the .proto
        self, request: pb.ListChunksRequest, context: Context
    ) -> pb.ListChunksResponse:
        async with served(context, "ListChunks"), rpc_errors(context, "ListChunks"):
            chunks, truncated = await self._store.list(
                request.after, request.limit or DEFAULT_LIST_LIMIT
            )
        return pb.ListChunksResponse(
            chunks=[
                pb.ChunkInfo(chunk_id=c.chunk_id, size_bytes=c.size_bytes, mtime=c.mtime)
                for c in chunks
            ],
            truncated=truncated,
        )

    async def Stat(  # noqa: N802 - names fixed by the .proto
        self, request: pb.StatRequest, context: Context
    ) -> pb.NodeStatus:
        async with rpc_errors(context, "Stat"):
            status = await self._store.stat()
        return node_status(status, self._address, scrub_status(self._scrub()))


_HANDLERS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def add_chunk_service(servicer: ChunkServicer, server: grpc.aio.Server) -> None:
    """The generated ``add_ChunkServiceServicer_to_server``, built from the same service
    description, except that the answers of ``PREFRAMED_ANSWERS`` go out unserialized."""
    service = pb.DESCRIPTOR.services_by_name["ChunkService"]
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        request_type = getattr(pb, method.input_type.name)
        response_type = getattr(pb, method.output_type.name)
        make = _HANDLERS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(
            getattr(servicer, method.name),
            request_deserializer=request_type.FromString,
            response_serializer=(
                None if method.name in PREFRAMED_ANSWERS else response_type.SerializeToString
            ),
        )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service.full_name, handlers),)
    )
