"""The server end of the HTTP ceiling, run as its own process (``bench.transfer.ceilings``).

    python -m bench.transfer.http_peer --listen 127.0.0.1:PORT

``GET /bytes/N`` answers N bytes from memory with a Content-Length, written in pieces of the
gateway's stripe size (a download writes one stripe at a time); ``PUT /sink`` reads the body
as the gateway's request body does (``readany``, each piece as aiohttp buffered it) and drops
it, answering how many bytes came. Nothing else: no metadata, no nodes, no hashing.

The server is the gateway's stack as the composition root sets it up (gateway/app.py's
``_serve_app`` and gateway/http/server.py's ``GuardedRunner``): aiohttp on uvloop with the
allocator's settings, keep-alive timeout and line/field limits from GatewaySettings' defaults,
handler cancellation on, no access log, no decompression, SO_REUSEADDR. The guard's own
additions (a header deadline, a connection count) cost nothing per byte and are left out:
bench may not import the daemons.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from aiohttp import web

from diststorage.core.daemon import event_loop_factory, wait_for_stop_signal
from diststorage.core.memory import tune_allocator
from diststorage.core.settings import GatewaySettings, split_host_port

# aiohttp's limits as GuardedRunner names them (ServerLimits' defaults).
MAX_LINE_BYTES = 8190
MAX_FIELD_BYTES = 8190


def _default(name: str) -> float:
    value = GatewaySettings.model_fields[name].default
    assert isinstance(value, int | float)
    return value


PIECE_BYTES = int(_default("stripe_size_bytes"))
_PIECE = bytes(PIECE_BYTES)


async def send_bytes(request: web.Request) -> web.StreamResponse:
    total = int(request.match_info["size"])
    response = web.StreamResponse(
        headers={"Content-Type": "application/octet-stream", "Content-Length": str(total)}
    )
    await response.prepare(request)
    sent = 0
    while sent < total:
        size = min(PIECE_BYTES, total - sent)
        await response.write(_PIECE if size == PIECE_BYTES else _PIECE[:size])
        sent += size
    await response.write_eof()
    return response


async def sink(request: web.Request) -> web.Response:
    received = 0
    while True:
        piece = await request.content.readany()
        if not piece:
            break
        received += len(piece)
    return web.json_response({"received": received}, status=201)


async def serve(listen: str) -> None:
    app = web.Application()
    app.router.add_get("/bytes/{size:\\d+}", send_bytes)
    app.router.add_put("/sink", sink)
    runner = web.AppRunner(
        app,
        keepalive_timeout=_default("keepalive_timeout_s"),
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_FIELD_BYTES,
        handler_cancellation=True,
        access_log=None,
        auto_decompress=False,
    )
    await runner.setup()
    try:
        host, port = split_host_port(listen)
        await web.TCPSite(runner, host, port, reuse_address=True).start()
        await wait_for_stop_signal()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the server end of the HTTP ceiling")
    parser.add_argument("--listen", required=True)
    args = parser.parse_args(argv)
    tune_allocator()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(serve(args.listen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
