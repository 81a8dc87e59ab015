"""The HTTP server under every front end, hardened against slow and abusive clients.

aiohttp's server is kept, with what it lacks added at its protocol level:

- a **header-read deadline**: a request's head (request line and headers) must be complete
  within ``header_read_timeout_s`` of its first byte (or of the connection's opening). aiohttp
  only bounds the idle time between requests (``keepalive_timeout``, also set here), so a
  client trickling one header line every few seconds held its connection for an hour. Past the
  deadline the client gets a 408 and the connection is closed;
- a **connection limit**: a connection over ``max_connections`` is answered 503 with a
  Retry-After and closed before anything of it is read;
- **answers to requests the parser refuses** (a bad request line, too many or too long
  headers, a malformed length): the front end's own error body (JSON on the native API, S3 XML
  on the S3 port) instead of aiohttp's text/plain echo of the request, and one log line each
  instead of a traceback.

The body's idle deadline is the body reader's (``http.body``): only it knows when the handler
is waiting for bytes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger(__name__)

# An error answer a front end renders: (status, message) → a response with its error body.
RenderError = Callable[[int, str], web.Response]


@dataclass(frozen=True)
class ServerLimits:
    header_read_timeout_s: float
    keepalive_timeout_s: float
    max_connections: int
    retry_after_s: int = 1
    # aiohttp's own limits, named here so that the messages can quote them.
    max_line_bytes: int = 8190
    max_field_bytes: int = 8190

    def __post_init__(self) -> None:
        assert self.header_read_timeout_s > 0 and self.keepalive_timeout_s > 0
        assert self.max_connections >= 1


def raw_response(response: web.Response, extra_headers: dict[str, str] | None = None) -> bytes:
    """An error response written out by hand, for answers given outside any request (the
    connection limit, the header deadline): status line, headers, body, then the close."""
    body = response.body if isinstance(response.body, bytes) else b""
    reason = HTTPStatus(response.status).phrase
    headers = {
        "Content-Type": response.headers.get("Content-Type", "application/octet-stream"),
        "Content-Length": str(len(body)),
        **(extra_headers or {}),
        "Connection": "close",
    }
    head = [f"HTTP/1.1 {response.status} {reason}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def parser_message(message: str) -> str:
    """What aiohttp's parser said, without the part of the request it quotes: the request's
    own bytes have no business in an answer or a log line."""
    first_line = message.strip().splitlines()[0] if message.strip() else "malformed request"
    return first_line.split(":", 1)[0].strip()[:200]


class GuardedRequestHandler(RequestHandler):
    """One connection: aiohttp's handler plus the header deadline, the connection limit and
    the front end's error bodies (see the module docstring)."""

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._head_deadline: asyncio.TimerHandle | None = None
        # Over the connection limit: answered and closed, nothing of it read.
        self._refused = False
        # Between a head's arrival and its handler's end, incoming bytes are its body.
        self._in_request = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        limits = self._guard.limits
        if len(self._guard.connections) >= limits.max_connections:
            log.info("HTTP connection refused: %d open already", limits.max_connections)
            answer = self._guard.render(503, "too many connections to this gateway; retry later")
            retry = {"Retry-After": str(limits.retry_after_s)}
            # cast, not isinstance: uvloop's transports do not derive from asyncio's classes.
            writable = cast(asyncio.Transport, transport)
            writable.write(raw_response(answer, retry))
            writable.close()
            self._refused = True
            return
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_head_deadline()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if not self._in_request and self._head_deadline is None:
            self._arm_head_deadline()
        super().data_received(data)

    def head_arrived(self) -> None:
        self._disarm_head_deadline()
        self._in_request = True

    def request_ended(self, response: web.StreamResponse | None) -> None:
        """``response`` is None when the handler raised."""
        self._in_request = False
        if response is not None and response.status == 408:
            # A body that stalled past its deadline: aiohttp would otherwise wait up to its
            # lingering time (10 s) for the rest of it before closing, the very wait the
            # deadline ended.
            self._lingering_time = 0.0

    def _arm_head_deadline(self) -> None:
        delay_s = self._guard.limits.header_read_timeout_s
        self._head_deadline = asyncio.get_running_loop().call_later(delay_s, self._head_too_slow)

    def _disarm_head_deadline(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_too_slow(self) -> None:
        self._head_deadline = None
        if self._in_request or self.transport is None:
            return
        limits = self._guard.limits
        log.info(
            "HTTP connection closed: no complete request head in %gs", limits.header_read_timeout_s
        )
        answer = self._guard.render(
            408, f"the request's headers did not arrive within {limits.header_read_timeout_s:g} s"
        )
        self.transport.write(raw_response(answer))
        self.force_close()

    def handle_error(
        self,
        request: Any,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """A request aiohttp refused before any handler saw it: one log line and the front
        end's error body. A 500 is a failure of ours and keeps aiohttp's traceback in the log
        (its body never shows it: debug is off)."""
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        said = parser_message(message or (str(exc) if exc is not None else ""))
        log.info("HTTP %d from %s: %s", status, request.remote, said)
        response = self._guard.render(status, said)
        response.force_close()
        return response


class GuardedServer(web.Server):
    """The connection factory of one listener: makes ``GuardedRequestHandler``s and tells each
    when its request's head has arrived and when its handler has ended."""

    def __init__(
        self,
        handler: Any,
        *,
        limits: ServerLimits,
        render: RenderError,
        request_factory: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            self._tracked(handler), request_factory=self._noting(request_factory), **kwargs
        )
        self.limits = limits
        self.render = render

    def __call__(self) -> GuardedRequestHandler:
        return GuardedRequestHandler(self, loop=self._loop, **self._kwargs)

    @staticmethod
    def _noting(request_factory: Any) -> Any:
        def make_request(
            message: RawRequestMessage,
            payload: StreamReader,
            protocol: RequestHandler,
            writer: AbstractStreamWriter,
            task: asyncio.Task[None],
        ) -> web.BaseRequest:
            if isinstance(protocol, GuardedRequestHandler):
                protocol.head_arrived()
            return request_factory(message, payload, protocol, writer, task)  # type: ignore[no-any-return]

        return make_request

    @staticmethod
    def _tracked(handler: Any) -> Any:
        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            response: web.StreamResponse | None = None
            try:
                response = await handler(request)
                return response
            finally:
                protocol = request.protocol
                if isinstance(protocol, GuardedRequestHandler):
                    protocol.request_ended(response)

        return handle


class GuardedRunner(web.AppRunner):
    """``web.AppRunner`` whose server is a ``GuardedServer``."""

    def __init__(
        self, app: web.Application, limits: ServerLimits, render: RenderError, **kwargs: Any
    ) -> None:
        super().__init__(
            app,
            keepalive_timeout=limits.keepalive_timeout_s,
            max_line_size=limits.max_line_bytes,
            max_field_size=limits.max_field_bytes,
            **kwargs,
        )
        self._limits = limits
        self._render = render

    async def _make_server(self) -> web.Server:
        # aiohttp's own (the app's startup and freeze), then the same server rebuilt guarded
        # from its public parts.
        plain = await super()._make_server()
        kwargs = {k: v for k, v in self._kwargs.items() if k != "handler_cancellation"}
        return GuardedServer(
            plain.request_handler,
            limits=self._limits,
            render=self._render,
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            **kwargs,
        )
