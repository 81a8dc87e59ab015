"""The OpenAPI 3 description of the native HTTP API, served at ``GET /_/openapi.json``.

Written by hand from the parsers (``parse.py``, ``admin.parse_system_route``); a test holds
it to them, route by route and method by method, so the two cannot drift apart. It describes
the object routes and the cluster's system routes; the account routes under ``/_/admin/``
have their own table (``accounts_admin``) and are not in it. Every route but ``/_/health``
needs a SigV4-signed request (``sigv4``).
"""

from __future__ import annotations

from typing import Any

from diststorage.gateway.api.object_layout import DEFAULT_SEGMENTS_PER_PAGE
from diststorage.gateway.api.parse import MAX_KEY_BYTES, SYSTEM_PREFIX
from diststorage.meta import DEFAULT_NAMESPACE, MAX_LIST_LIMIT, MAX_SEGMENTS_PER_PAGE

OPENAPI_PATH = f"/{SYSTEM_PREFIX}openapi.json"

_JSON = "application/json"
_ERROR = {"$ref": "#/components/schemas/Error"}
_OBJECT = {"$ref": "#/components/schemas/Object"}


def _answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"description": description}
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _errors(*statuses: str) -> dict[str, Any]:
    return {status: _answer("a JSON error", _ERROR) for status in statuses}


def _header(name: str, description: str, pattern: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    if pattern is not None:
        schema["pattern"] = pattern
    return {
        "name": name,
        "in": "header",
        "required": False,
        "description": description,
        "schema": schema,
    }


_KEY = {
    "name": "key",
    "in": "path",
    "required": True,
    "description": f"the object key, percent-encoded; 1 to {MAX_KEY_BYTES} bytes of UTF-8, "
    f"not under {SYSTEM_PREFIX!r}",
    "schema": {"type": "string", "minLength": 1},
}
_NODE = {
    "name": "node",
    "in": "path",
    "required": True,
    "description": "a node id, or an unambiguous prefix of one",
    "schema": {"type": "string", "pattern": "^[0-9a-f]{1,64}$"},
}
_RANGE = _header("Range", "one byte range, bytes=START-END, START- or -SUFFIX")
_REDUNDANCY = _header(
    "X-Redundancy",
    "ec:K+M or replicate:N; none: the gateway's default",
    r"^(ec:[0-9]{1,2}\+[0-9]{1,2}|replicate:[0-9]{1,2})$",
)
_BODY = {
    "required": True,
    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
}
_READ_ERRORS = _errors("400", "403", "404", "416", "503")
_WRITE_ERRORS = _errors("400", "403", "409", "411", "412", "413", "503", "507")


def _listing() -> dict[str, Any]:
    query = [
        {"name": "prefix", "in": "query", "required": False, "schema": {"type": "string"}},
        {"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT},
        },
    ]
    page = {
        "type": "object",
        "required": ["objects", "truncated", "next_after"],
        "properties": {
            "objects": {"type": "array", "items": _OBJECT},
            "truncated": {"type": "boolean"},
            "next_after": {"type": ["string", "null"]},
        },
    }
    get = {
        "summary": "list keys in key order",
        "parameters": query,
        "responses": {"200": _answer("a page of objects", page), **_errors("400", "403")},
    }
    head = {
        "summary": "list keys, head only",
        "parameters": query,
        "responses": {"200": _answer("a page of objects"), **_errors("400", "403")},
    }
    return {"get": get, "head": head}


def _object() -> dict[str, Any]:
    body = {"200": _answer("the object's bytes"), "206": _answer("the bytes of the range")}
    write = {"201": _answer("stored", _OBJECT), **_WRITE_ERRORS}
    return {
        "parameters": [_KEY],
        "get": {
            "summary": "read an object",
            "parameters": [_RANGE],
            "responses": {**body, **_READ_ERRORS},
        },
        "head": {
            "summary": "an object's headers",
            "parameters": [_RANGE],
            "responses": {**body, **_READ_ERRORS},
        },
        "put": {
            "summary": "store an object, replacing any",
            "parameters": [_REDUNDANCY],
            "requestBody": _BODY,
            "responses": write,
        },
        "post": {
            "summary": "store an object under a free key",
            "parameters": [_REDUNDANCY],
            "requestBody": _BODY,
            "responses": write,
        },
        "delete": {
            "summary": "delete an object",
            "responses": {"204": _answer("deleted"), **_errors("400", "403", "404", "503")},
        },
    }


def _object_layout() -> dict[str, Any]:
    key = _KEY | {"description": f"the object key, percent-encoded; 1 to {MAX_KEY_BYTES} bytes"}
    query = [
        {
            "name": "bucket",
            "in": "query",
            "required": False,
            "description": f"the bucket; {DEFAULT_NAMESPACE!r}, the native API's, when absent",
            "schema": {"type": "string"},
        },
        {
            "name": "start",
            "in": "query",
            "required": False,
            "description": "the first segment of the page, counted across the object's parts",
            "schema": {"type": "integer", "minimum": 0, "default": 0},
        },
        {
            "name": "limit",
            "in": "query",
            "required": False,
            "description": "segments in the page",
            "schema": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_SEGMENTS_PER_PAGE,
                "default": DEFAULT_SEGMENTS_PER_PAGE,
            },
        },
    ]
    summary = "where the object's shards are: a page of its segments, each shard's node and state"
    operation = {
        "summary": summary,
        "parameters": query,
        "responses": {
            "200": _answer("the layout", {"type": "object"}),
            **_errors("400", "403", "404", "503"),
        },
    }
    return {"parameters": [key], "get": operation, "head": operation}


def _read_only(summary: str, status: str = "200") -> dict[str, Any]:
    operation = {"summary": summary, "responses": {status: _answer(summary), **_errors("403")}}
    return {"get": operation, "head": operation}


def _system() -> dict[str, Any]:
    prefix = f"/{SYSTEM_PREFIX}"
    health = _read_only("whether the default policy can be written")
    for operation in health.values():
        operation["responses"]["503"] = _answer("too few writable nodes")
    node_errors = _errors("400", "403", "404", "409")
    return {
        f"{prefix}health": health,
        f"{prefix}nodes": _read_only("every node, its state and its use"),
        f"{prefix}repair": _read_only("the repair backlog and the repair worker's figures"),
        f"{prefix}metrics": _read_only("Prometheus metrics"),
        f"{prefix}openapi.json": _read_only("this document"),
        f"{prefix}objects/{{key}}/layout": _object_layout(),
        f"{prefix}rebalance": {
            "post": {
                "summary": "plan and start a rebalance",
                "responses": {"202": _answer("planned"), **_errors("403")},
            }
        },
        f"{prefix}nodes/{{node}}": {
            "parameters": [_NODE],
            "get": {
                "summary": "one node",
                "responses": {"200": _answer("the node"), **node_errors},
            },
            "head": {
                "summary": "one node",
                "responses": {"200": _answer("the node"), **node_errors},
            },
            "delete": {
                "summary": "forget a drained node",
                "responses": {"204": _answer("forgotten"), **node_errors},
            },
        },
        f"{prefix}nodes/{{node}}/drain": {
            "parameters": [_NODE],
            "post": {
                "summary": "move every chunk off the node",
                "responses": {"202": _answer("draining"), **node_errors},
            },
        },
        f"{prefix}nodes/{{node}}/activate": {
            "parameters": [_NODE],
            "post": {
                "summary": "take new chunks again",
                "responses": {"202": _answer("active"), **node_errors},
            },
        },
        f"{prefix}nodes/{{node}}/accept": {
            "parameters": [_NODE],
            "post": {
                "summary": "admit a pending node (--node-admission manual)",
                "responses": {"202": _answer("accepted"), **node_errors},
            },
        },
    }


def native_openapi(server_url: str = "/") -> dict[str, Any]:
    """The document, its one server at ``server_url``."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "diststorage native API", "version": "1"},
        "servers": [{"url": server_url}],
        "security": [{"sigv4": []}],
        "paths": {"/": _listing(), "/{key}": _object(), **_system()},
        "components": {
            "securitySchemes": {
                "sigv4": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "AWS Signature Version 4",
                },
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "message", "request_id"],
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        # Also the answer's X-Request-Id: the client's, or one made for it.
                        "request_id": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"},
                    },
                },
                "Object": {
                    "type": "object",
                    "required": [
                        "key",
                        "size",
                        "md5",
                        "etag",
                        "content_type",
                        "redundancy",
                        "last_modified",
                    ],
                    "properties": {
                        "key": {"type": "string"},
                        "size": {"type": "integer", "minimum": 0},
                        "md5": {"type": "string"},
                        "etag": {"type": "string"},
                        "content_type": {"type": "string"},
                        "redundancy": {"type": "string"},
                        "last_modified": {"type": "string"},
                    },
                },
            },
        },
    }
