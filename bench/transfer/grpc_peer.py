"""One end of the loopback gRPC ceiling, run as its own process (``bench.transfer.ceilings``).

    python -m bench.transfer.grpc_peer serve --listen 127.0.0.1:PORT [--cluster-dir DIR]
    python -m bench.transfer.grpc_peer pull|push --target HOST:PORT --bytes N [--cluster-dir DIR]

The server has two raw-bytes methods, no protobuf on either side: ``Pull`` streams N bytes to
the caller in 1 MiB messages from memory (a node answering GetChunk), ``Push`` takes a stream
of messages and answers how many bytes came (a gateway's PutChunk). The client makes one
untimed call first (the connection and, with DIR, the TLS handshake), then the timed one, and
prints one JSON line: bytes, seconds, and its own CPU seconds over the timed call.

Both ends run as the daemons do (uvloop, the allocator's settings) with the options of the
node's server (node/app.py: SERVER_OPTIONS, grpc_options, call_limits, from NodeSettings'
defaults) and of the gateway's channels to nodes (gateway/nodeclient.py), copied here because
bench may not import the daemons; with DIR, over mutual TLS with leaves issued under that
cluster CA (``diststorage.core.cluster_tls``), as a node and a gateway are.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import grpc.aio

from diststorage.core.cluster_tls import (
    GATEWAY_ROLE,
    NODE_ROLE,
    PLAINTEXT_LINKS,
    ClusterLinks,
    issue,
    load_authority,
)
from diststorage.core.daemon import event_loop_factory, wait_for_stop_signal
from diststorage.core.memory import tune_allocator
from diststorage.core.settings import GatewaySettings, NodeSettings

MESSAGE_BYTES = 1 << 20
SERVICE = "bench.Ceiling"
PULL = f"/{SERVICE}/Pull"
PUSH = f"/{SERVICE}/Push"
WARM_UP_BYTES = MESSAGE_BYTES


def _default(settings: type[NodeSettings] | type[GatewaySettings], name: str) -> int:
    value = settings.model_fields[name].default
    assert isinstance(value, int)
    return value


def server_options() -> list[tuple[str, int]]:
    """The node's: node/app.py's grpc_options, SERVER_OPTIONS and call_limits."""
    max_message = _default(NodeSettings, "max_message_bytes")
    return [
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_send_message_length", max_message),
        ("grpc.so_reuseport", 0),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.http2.ping_timeout_ms", 10_000),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.max_concurrent_streams", _default(NodeSettings, "max_concurrent_streams")),
    ]


def channel_options() -> list[tuple[str, int]]:
    """The gateway's channel to a node: gateway/nodeclient.py's NodeClient."""
    max_message = _default(GatewaySettings, "max_message_bytes")
    return [
        ("grpc.max_send_message_length", max_message),
        ("grpc.max_receive_message_length", max_message),
        ("grpc.keepalive_time_ms", 10_000),
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.initial_reconnect_backoff_ms", 200),
        ("grpc.max_reconnect_backoff_ms", 2_000),
        ("grpc.client_idle_timeout_ms", 5_000),
    ]


def links(cluster_dir: Path | None, role: str) -> ClusterLinks:
    if cluster_dir is None:
        return PLAINTEXT_LINKS
    return ClusterLinks(issue(load_authority(cluster_dir), role, "ceiling"))


_BLOCK = bytes(MESSAGE_BYTES)


async def _pull(
    request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]
) -> AsyncIterator[bytes]:
    remaining = int.from_bytes(request, "big")
    while remaining > 0:
        size = min(MESSAGE_BYTES, remaining)
        yield _BLOCK if size == MESSAGE_BYTES else _BLOCK[:size]
        remaining -= size


async def _push(
    requests: AsyncIterator[bytes], _context: grpc.aio.ServicerContext[bytes, bytes]
) -> bytes:
    received = 0
    async for message in requests:
        received += len(message)
    return received.to_bytes(8, "big")


async def serve(listen: str, cluster_dir: Path | None) -> None:
    server = grpc.aio.server(
        options=server_options(),
        maximum_concurrent_rpcs=_default(NodeSettings, "max_concurrent_rpcs"),
    )
    handlers = {
        # No (de)serializers: the messages are the bytes as they are.
        "Pull": grpc.unary_stream_rpc_method_handler(_pull),
        "Push": grpc.stream_unary_rpc_method_handler(_push),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    links(cluster_dir, NODE_ROLE).add_port(server, listen)
    await server.start()
    try:
        await wait_for_stop_signal()
    finally:
        await server.stop(1.0)


async def _pull_once(channel: grpc.aio.Channel, total: int) -> int:
    pull = channel.unary_stream(PULL, request_serializer=None, response_deserializer=None)
    call = pull(total.to_bytes(8, "big"), wait_for_ready=True)
    received = 0
    while True:
        message = await call.read()
        if message is grpc.aio.EOF:  # type: ignore[attr-defined]
            return received
        assert isinstance(message, bytes)
        received += len(message)


async def _push_once(channel: grpc.aio.Channel, total: int) -> int:
    push = channel.stream_unary(PUSH, request_serializer=None, response_deserializer=None)
    # Called without an iterator, grpc.aio hands back a call to write() to.
    call = push(wait_for_ready=True)  # type: ignore[call-arg]
    sent = 0
    while sent < total:
        size = min(MESSAGE_BYTES, total - sent)
        await call.write(_BLOCK if size == MESSAGE_BYTES else _BLOCK[:size])
        sent += size
    await call.done_writing()
    answer = await call
    assert isinstance(answer, bytes)
    return int.from_bytes(answer, "big")


async def run_client(direction: str, target: str, total: int, cluster_dir: Path | None) -> None:
    once = _pull_once if direction == "pull" else _push_once
    channel = links(cluster_dir, GATEWAY_ROLE).channel(target, channel_options())
    async with channel:
        await once(channel, WARM_UP_BYTES)
        cpu_before = time.process_time()
        started = time.perf_counter()
        moved = await once(channel, total)
        seconds = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_before
    print(json.dumps({"bytes": moved, "seconds": seconds, "cpu_s": cpu_s}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one end of the loopback gRPC ceiling")
    parser.add_argument("role", choices=["serve", "pull", "push"])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--target", default="")
    parser.add_argument("--bytes", type=int, default=0)
    parser.add_argument("--cluster-dir", type=Path)
    args = parser.parse_args(argv)
    tune_allocator()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        if args.role == "serve":
            runner.run(serve(args.listen, args.cluster_dir))
        else:
            runner.run(run_client(args.role, args.target, args.bytes, args.cluster_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
