"""Admission: a front end's guard judges each request once, before its handler runs and
before any ``100 Continue`` goes out, so that a refused client never sends its body.

A front end subclasses ``Admission`` with its own ``judge`` (who may do what); the middleware
and the route's expect handler here are the same for every front end. On refusal no
100 Continue is sent, and the middleware then answers the refusal like any error, the body
unread. An upload over its slots (``http.uploads``) is refused the same way. That answer
closes the connection (``close_if_refused_before_body``, an ``on_response_prepare`` hook of
each front end): the client will never send the body, and aiohttp, still expecting it, would
read the client's next request on that connection as the rest of this one's body.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from aiohttp import web
from aiohttp.typedefs import Handler

from diststorage.core.errors import DiststorageError
from diststorage.gateway.http.uploads import UPLOAD_SLOTS, brings_body, client_of
from diststorage.s3auth.sigv4 import SignedRequest

_ADMITTED: web.RequestKey[bool] = web.RequestKey("admitted", bool)
_REFUSED_BEFORE_BODY: web.RequestKey[bool] = web.RequestKey("refused_before_body", bool)


def signed_request_of(request: web.Request) -> SignedRequest:
    """The request as the verifier reads it: path and query still encoded, headers as sent."""
    path, _, query = request.raw_path.partition("?")
    return SignedRequest(request.method, path, query, tuple(request.headers.items()))


class Admission(ABC):
    @abstractmethod
    async def judge(self, request: web.Request) -> None:
        """Returns when the request may proceed (leaving what handlers need on it); raises
        the error to answer otherwise."""

    async def admit(self, request: web.Request) -> None:
        """Judges the request once, however often it is asked."""
        if request.get(_ADMITTED):
            return
        await self.judge(request)
        request[_ADMITTED] = True

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        await self.admit(request)
        return await handler(request)

    async def expect_handler(self, request: web.Request) -> None:
        """Sends 100 Continue only to a request that is admitted; an Expect other than
        100-continue is 417, as aiohttp's own handler answers."""
        expect = request.headers.get("Expect", "")
        if expect.lower() != "100-continue":
            raise web.HTTPExpectationFailed(text=f"Unknown Expect: {expect}")
        try:
            await self.admit(request)
            slots = request.config_dict.get(UPLOAD_SLOTS)
            if slots is not None and brings_body(request):
                slots.check(client_of(request))
        except DiststorageError:
            request[_REFUSED_BEFORE_BODY] = True
            return  # the middleware refuses it again, and answers
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            # The interim answer is not part of the response's size.
            request.writer.output_size = 0


async def close_if_refused_before_body(request: web.Request, response: web.StreamResponse) -> None:
    """Closes the connection after the answer to a request refused before 100 Continue."""
    if request.get(_REFUSED_BEFORE_BODY):
        response.force_close()
