"""Admin routes for access keys, buckets and grants, under ``/_/admin/`` (JSON in, JSON out).

::

    POST   keys                     {"name", "can_create_buckets"?, "is_admin"?} → 201, the
                                    new key with its secret: the only answer that holds one
    GET    keys                     every key (never a secret)
    GET    keys/{id}                one key, with its grants
    DELETE keys/{id}                204; its grants go with it
    POST   keys/{id}/disable        refused everywhere within the key cache's time to live
    POST   keys/{id}/enable
    POST   buckets                  {"name", "owner"?} → 201; the owner (default: the caller)
                                    gets read, write and owner
    GET    buckets                  every bucket
    GET    buckets/{name}           one bucket, with its grants
    DELETE buckets/{name}           204 once it is empty
    POST   buckets/{name}/allow     {"key", "read"?, "write"?, "owner"?}: adds those rights
    POST   buckets/{name}/deny      the same: takes them away, all of them when none is named

Parsed into a typed route before any handler runs, like the other system routes.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from diststorage.core.errors import InvalidKey, InvalidRequest, MethodNotAllowed, PayloadTooLarge
from diststorage.gateway.api.callers import verified_body
from diststorage.gateway.auth.accounts import Accounts, Rights
from diststorage.gateway.http.callers import caller_of
from diststorage.gateway.objects.ports import ByteSource
from diststorage.gateway.services import Services
from diststorage.meta import BucketInfo, Grant, KeyInfo, KeyState

ADMIN_PREFIX = "admin/"
MAX_BODY_BYTES = 64 * 1024
_NAME = r"[A-Za-z0-9._-]{1,255}"
_ROUTE = re.compile(rf"^(?P<kind>keys|buckets)(?:/(?P<name>{_NAME})(?:/(?P<action>[a-z]+))?)?$")
_GET = frozenset({"GET", "HEAD"})
_POST = frozenset({"POST"})


class AdminEndpoint(enum.Enum):
    """Each admin route, with the methods it answers."""

    KEYS = ("keys", frozenset({"GET", "HEAD", "POST"}))
    KEY = ("key", frozenset({"GET", "HEAD", "DELETE"}))
    KEY_DISABLE = ("key-disable", _POST)
    KEY_ENABLE = ("key-enable", _POST)
    BUCKETS = ("buckets", frozenset({"GET", "HEAD", "POST"}))
    BUCKET = ("bucket", frozenset({"GET", "HEAD", "DELETE"}))
    BUCKET_ALLOW = ("bucket-allow", _POST)
    BUCKET_DENY = ("bucket-deny", _POST)

    @property
    def methods(self) -> frozenset[str]:
        return self.value[1]


_ENDPOINTS = {e.value[0]: e for e in AdminEndpoint}
_SINGULAR = {"keys": "key", "buckets": "bucket"}


@dataclass(frozen=True, slots=True)
class AdminRoute:
    endpoint: AdminEndpoint
    name: str = ""  # the key id or bucket name in the path


def parse_admin_route(path: str) -> AdminRoute:
    """``path`` is what follows ``/_/admin/``; raises InvalidKey for anything unknown."""
    match = _ROUTE.match(path)
    if match is None:
        raise InvalidKey(f"no admin route {path!r}")
    kind, name, action = match["kind"], match["name"], match["action"]
    label = kind if name is None else _SINGULAR[kind] + (f"-{action}" if action else "")
    endpoint = _ENDPOINTS.get(label)
    if endpoint is None or (kind == "keys") != label.startswith("key"):
        raise InvalidKey(f"no admin route {path!r}")
    return AdminRoute(endpoint, name or "")


def is_admin_path(system_path: str) -> bool:
    """Whether a path after ``/_/`` is an admin route."""
    return system_path.startswith(ADMIN_PREFIX)


async def admin_route(request: web.Request, services: Services, path: str) -> web.StreamResponse:
    """Answers ``/_/admin/{path}``; a body is read as verified against its signature."""
    route = parse_admin_route(path.removeprefix(ADMIN_PREFIX))
    if request.method not in route.endpoint.methods:
        raise MethodNotAllowed(f"{request.method} is not allowed on /_/{path}")
    if request.method == "POST":
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise PayloadTooLarge(f"an admin request body is at most {MAX_BODY_BYTES} bytes")
        payload = await _json_body(verified_body(request, request.content_length, MAX_BODY_BYTES))
    else:
        payload = {}
    caller = caller_of(request)
    call = _Call(
        services.accounts,
        route,
        request.method,
        payload,
        None if caller is None else caller.access_key_id,
    )
    return await _HANDLERS[route.endpoint](call)


async def _json_body(body: ByteSource) -> Mapping[str, Any]:
    raw = await body.read_up_to(MAX_BODY_BYTES + 1)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"an admin request body is at most {MAX_BODY_BYTES} bytes")
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest("the body is not JSON") from exc
    if not isinstance(parsed, dict):
        raise InvalidRequest("the body is a JSON object")
    return parsed


@dataclass(frozen=True, slots=True)
class _Call:
    accounts: Accounts
    route: AdminRoute
    method: str
    body: Mapping[str, Any]
    caller_key_id: str | None

    def text(self, name: str, default: str | None = None) -> str:
        value = self.body.get(name, default)
        if not isinstance(value, str):
            raise InvalidRequest(f"{name!r} is a string, and required")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.body.get(name, default)
        if not isinstance(value, bool):
            raise InvalidRequest(f"{name!r} is true or false")
        return value

    def rights(self) -> Rights:
        return Rights(self.flag("read"), self.flag("write"), self.flag("owner"))


def key_json(info: KeyInfo) -> dict[str, Any]:
    return {
        "access_key_id": info.key_id,
        "name": info.name,
        "state": info.state.value,
        "can_create_buckets": info.can_create_buckets,
        "is_admin": info.is_admin,
        "created_at": info.created_at.isoformat(),
    }


def bucket_json(info: BucketInfo) -> dict[str, Any]:
    return {
        "name": info.name,
        "created_at": None if info.created_at is None else info.created_at.isoformat(),
        "owner": info.owner_key_id,
    }


def grant_json(grant: Grant) -> dict[str, Any]:
    return {
        "bucket": grant.bucket,
        "key": grant.key_id,
        "read": grant.read,
        "write": grant.write,
        "owner": grant.owner,
    }


async def _keys(call: _Call) -> web.Response:
    if call.method == "POST":
        new = await call.accounts.create_key(
            call.text("name"), call.flag("can_create_buckets", True), call.flag("is_admin")
        )
        return web.json_response(key_json(new.info) | {"secret_access_key": new.secret}, status=201)
    return web.json_response([key_json(k) for k in await call.accounts.store.list_keys()])


async def _key(call: _Call) -> web.Response:
    store = call.accounts.store
    if call.method == "DELETE":
        await call.accounts.delete_key(call.route.name)
        return web.Response(status=204)
    info = (await store.get_key(call.route.name)).info
    grants = [
        await store.grant_of(info.key_id, bucket.name)
        for bucket in await store.list_buckets(info.key_id)
    ]
    return web.json_response(key_json(info) | {"grants": [grant_json(g) for g in grants]})


async def _key_state(call: _Call) -> web.Response:
    disable = call.route.endpoint == AdminEndpoint.KEY_DISABLE
    state = KeyState.DISABLED if disable else KeyState.ACTIVE
    return web.json_response(key_json(await call.accounts.set_key_state(call.route.name, state)))


async def _buckets(call: _Call) -> web.Response:
    if call.method == "POST":
        owner = call.body.get("owner", call.caller_key_id)
        if owner is not None and not isinstance(owner, str):
            raise InvalidRequest("'owner' is an access key id")
        info = await call.accounts.create_bucket(call.text("name"), owner)
        return web.json_response(bucket_json(info), status=201)
    return web.json_response([bucket_json(b) for b in await call.accounts.store.list_buckets()])


async def _bucket(call: _Call) -> web.Response:
    if call.method == "DELETE":
        await call.accounts.delete_bucket(call.route.name)
        return web.Response(status=204)
    store = call.accounts.store
    info = await store.get_bucket(call.route.name)
    grants = await store.grants_of_bucket(info.name)
    return web.json_response(bucket_json(info) | {"grants": [grant_json(g) for g in grants]})


async def _grant(call: _Call) -> web.Response:
    bucket, key_id, rights = call.route.name, call.text("key"), call.rights()
    if call.route.endpoint == AdminEndpoint.BUCKET_ALLOW:
        grant = await call.accounts.allow(bucket, key_id, rights)
    else:
        grant = await call.accounts.deny(bucket, key_id, rights)
    return web.json_response(grant_json(grant))


_HANDLERS: dict[AdminEndpoint, Callable[[_Call], Awaitable[web.Response]]] = {
    AdminEndpoint.KEYS: _keys,
    AdminEndpoint.KEY: _key,
    AdminEndpoint.KEY_DISABLE: _key_state,
    AdminEndpoint.KEY_ENABLE: _key_state,
    AdminEndpoint.BUCKETS: _buckets,
    AdminEndpoint.BUCKET: _bucket,
    AdminEndpoint.BUCKET_ALLOW: _grant,
    AdminEndpoint.BUCKET_DENY: _grant,
}
