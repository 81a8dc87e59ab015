"""Who sent a request, once authentication has said so: kept on the request for handlers."""

from __future__ import annotations

from aiohttp import web

from diststorage.gateway.auth.ports import Caller, Principal

CALLER: web.RequestKey[Caller] = web.RequestKey("caller", Caller)


def set_caller(request: web.Request, caller: Caller) -> None:
    request[CALLER] = caller


def caller_of(request: web.Request) -> Principal | None:
    """The verified sender's principal; None for an unauthenticated (anonymous) request."""
    caller = request.get(CALLER)
    return None if caller is None else caller.principal
