"""One end of the loopback data-link ceiling, run as its own process (``bench.transfer.ceilings``).

    python -m bench.transfer.link_peer serve --listen 127.0.0.1:PORT [--sealed]
    python -m bench.transfer.link_peer pull --target HOST:PORT --bytes N [--sealed]

The data link's own framing and sealing (``diststorage.core.datalink``) with nothing behind
them: the server answers one GET with N bytes from memory as block heads and blocks of
``BLOCK_BYTES`` (an ec:4+2 block of the default 2 MiB stripe), sealed with ``--sealed`` as a
secure cluster's nodes send them, and the client takes them as the gateway does
(``FrameConnection``). The link secret comes on stdin to both ends (a hex line), as the gateway
gets it over gRPC. The client makes one untimed request first, then the timed one, and prints
one JSON line: bytes, seconds, and its own CPU seconds over the timed request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from diststorage.core.daemon import event_loop_factory, wait_for_stop_signal
from diststorage.core.datalink import (
    INSECURE_LINK,
    BlockHead,
    FrameConnection,
    Get,
    LinkSecret,
    Seal,
    answer_hello,
    decode,
    encode_block_head,
    encode_end,
    encode_get,
    say_hello,
)
from diststorage.core.memory import tune_allocator
from diststorage.core.settings import split_host_port

BLOCK_BYTES = (512 << 10) + 80
_BLOCK = bytes(BLOCK_BYTES)
WARM_UP_BYTES = BLOCK_BYTES
CHUNK_ID = "0" * 32


def _secret(sealed: bool) -> LinkSecret:
    if not sealed:
        return INSECURE_LINK
    link_id, key = (bytes.fromhex(part) for part in sys.stdin.readline().split())
    return LinkSecret(link_id, key)


async def _answer(connection: FrameConnection, secret: LinkSecret) -> None:
    seal = await answer_hello(connection, lambda _: secret, 64 << 20)
    assert seal is not None
    while True:
        get = decode(await connection.next_body())
        assert isinstance(get, Get)
        remaining = get.length
        while remaining > 0:
            size = min(BLOCK_BYTES, remaining)
            head = encode_block_head(BlockHead(0, 0, True))
            connection.write(*seal.frames(head, _BLOCK[:size]))
            await connection.drain()
            remaining -= size
        connection.write(seal.frame(encode_end()))
        await connection.drain()


async def serve(listen: str, secret: LinkSecret) -> None:
    host, port = split_host_port(listen)
    tasks: set[asyncio.Task[None]] = set()

    async def handle(connection: FrameConnection) -> None:
        try:
            await _answer(connection, secret)
        except Exception:
            connection.close()

    def accept(connection: FrameConnection) -> None:
        task = asyncio.create_task(handle(connection))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: FrameConnection(1024, accept), host, port)
    async with server:
        await wait_for_stop_signal()


async def _connect(host: str, port: int, secret: LinkSecret) -> tuple[FrameConnection, Seal]:
    loop = asyncio.get_running_loop()
    _, receiver = await loop.create_connection(lambda: FrameConnection(64 << 20), host, port)
    seal = await say_hello(receiver, secret)
    assert seal is not None
    return receiver, seal


async def _pull_once(receiver: FrameConnection, seal: Seal, total: int) -> int:
    receiver.write(seal.frame(encode_get(Get(CHUNK_ID, 0, total, None))))
    received = 0
    while (message := decode(await receiver.next_body())) is not None:
        assert isinstance(message, BlockHead)
        received += len(await receiver.next_body())
    return received


async def run_client(target: str, total: int, secret: LinkSecret) -> None:
    host, port = split_host_port(target)
    receiver, seal = await _connect(host, port, secret)
    try:
        await _pull_once(receiver, seal, WARM_UP_BYTES)
        cpu_before = time.process_time()
        started = time.perf_counter()
        moved = await _pull_once(receiver, seal, total)
        seconds = time.perf_counter() - started
        cpu_s = time.process_time() - cpu_before
    finally:
        receiver.close()
    print(json.dumps({"bytes": moved, "seconds": seconds, "cpu_s": cpu_s}), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one end of the loopback data-link ceiling")
    parser.add_argument("role", choices=["serve", "pull"])
    parser.add_argument("--listen", default="127.0.0.1:0")
    parser.add_argument("--target", default="")
    parser.add_argument("--bytes", type=int, default=0)
    parser.add_argument("--sealed", action="store_true")
    args = parser.parse_args(argv)
    secret = _secret(args.sealed)
    tune_allocator()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        if args.role == "serve":
            runner.run(serve(args.listen, secret))
        else:
            runner.run(run_client(args.target, args.bytes, secret))
    return 0


if __name__ == "__main__":
    sys.exit(main())
