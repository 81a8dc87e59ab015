"""Requests whose bytes are no protobuf message: INVALID_ARGUMENT, not UNKNOWN.

grpc decodes a request before the servicer runs, outside the servicer's error translation; a
``DecodeError`` there ends the call with UNKNOWN ("Unexpected DecodeError"), which reads as a
bug on the server. Both gRPC servers (a node's, a gateway's) take this interceptor; it takes
the bytes undecoded and decodes them itself, so that a request that is not a message is
answered as the client's mistake. Streamed requests are decoded one
message at a time as the servicer takes them; a bad one raises InvalidRequest there, which
the servicer answers like any other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from diststorage.core.errors import InvalidRequest

Decode = Callable[[bytes], Any]
Context = grpc.aio.ServicerContext[Any, Any]

# Generic only in the type stubs: at run time the class takes no subscript.
if TYPE_CHECKING:
    _Interceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.aio.ServerInterceptor


class RefuseUndecodable(_Interceptor):
    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        decode: Decode = handler.request_deserializer
        respond = handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary_unary(handler.unary_unary, decode), None, respond
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _unary_stream(handler.unary_stream, decode), None, respond
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _stream_unary(handler.stream_unary, decode), None, respond
            )
        return handler


async def _refuse(context: Context, error: DecodeError) -> NoReturn:
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"request is no message: {error}")
    raise AssertionError("abort returned")


def _unary_unary(inner: Any, decode: Decode) -> Any:
    async def behaviour(raw: bytes, context: Context) -> Any:
        try:
            request = decode(raw)
        except DecodeError as error:
            await _refuse(context, error)
        return await inner(request, context)

    return behaviour


def _unary_stream(inner: Any, decode: Decode) -> Any:
    async def behaviour(raw: bytes, context: Context) -> AsyncIterator[Any]:
        try:
            request = decode(raw)
        except DecodeError as error:
            await _refuse(context, error)
        async for response in inner(request, context):
            yield response

    return behaviour


def _stream_unary(inner: Any, decode: Decode) -> Any:
    async def behaviour(raws: AsyncIterator[bytes], context: Context) -> Any:
        async def decoded() -> AsyncIterator[Any]:
            async for raw in raws:
                try:
                    yield decode(raw)
                except DecodeError as error:
                    raise InvalidRequest(f"request is no message: {error}") from error

        return await inner(decoded(), context)

    return behaviour
