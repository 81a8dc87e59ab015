"""The native API's OpenAPI document is held to the routes: every path and method it names is
one the parsers route there, and every route the gateway has (but the account routes) is in it."""

from __future__ import annotations

import schemathesis
from schemathesis.core.result import Err

from diststorage.gateway.api.admin import SystemEndpoint, parse_system_route
from diststorage.gateway.api.openapi import OPENAPI_PATH, native_openapi
from diststorage.gateway.api.parse import OBJECT_METHODS, READ_METHODS, SYSTEM_PREFIX

HTTP_METHODS = {"get", "head", "put", "post", "delete", "patch", "options", "trace"}


def documented() -> dict[str, frozenset[str]]:
    paths = native_openapi()["paths"]
    return {
        path: frozenset(m.upper() for m in operations if m in HTTP_METHODS)
        for path, operations in paths.items()
    }


def test_object_routes_have_exactly_the_parsers_methods() -> None:
    routes = documented()
    assert routes["/"] == READ_METHODS
    assert routes["/{key}"] == OBJECT_METHODS


def test_every_system_path_documented_is_routed_with_its_methods() -> None:
    for path, methods in documented().items():
        if not path.startswith(f"/{SYSTEM_PREFIX}"):
            continue
        if path == OPENAPI_PATH:
            assert methods == READ_METHODS
            continue
        route = parse_system_route(path.removeprefix(f"/{SYSTEM_PREFIX}").replace("{node}", "ab12"))
        assert methods == route.endpoint.methods, path


def test_every_system_route_but_the_account_ones_is_documented() -> None:
    endpoints = set()
    for path in documented():
        if path.startswith(f"/{SYSTEM_PREFIX}") and path != OPENAPI_PATH:
            tail = path.removeprefix(f"/{SYSTEM_PREFIX}").replace("{node}", "ab12")
            endpoints.add(parse_system_route(tail).endpoint)
    assert endpoints == set(SystemEndpoint) - {SystemEndpoint.ADMIN}


def test_the_document_loads_as_openapi() -> None:
    schema = schemathesis.openapi.from_dict(native_openapi())
    operations = list(schema.get_all_operations())
    assert all(not isinstance(result, Err) for result in operations), operations
    assert len(operations) == sum(len(methods) for methods in documented().values())
