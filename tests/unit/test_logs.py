"""Log lines and request ids, in process: which ids are taken from a client, and what a JSON
or text line holds."""

from __future__ import annotations

import json
import logging
import sys

import pytest

from diststorage.core.logs import JsonFormatter, RequestIdFilter, TextFormatter, fields
from diststorage.core.request_ids import (
    accepted_or_new,
    current_request_id,
    grpc_metadata,
    is_acceptable,
)


@pytest.mark.parametrize("given", ["a", "3F2A9C-1.x_y", "A" * 64])
def test_an_id_of_the_allowed_shape_is_kept(given: str) -> None:
    assert accepted_or_new(given) == given


@pytest.mark.parametrize(
    "given", [None, "", "has space", "A" * 65, "new\nline", 'quo"te', "ünï", "a/b", "a;b"]
)
def test_any_other_id_is_replaced_by_a_new_one(given: str | None) -> None:
    made = accepted_or_new(given)
    assert made != given
    assert is_acceptable(made) and len(made) == 16 and made == made.upper()
    assert accepted_or_new(given) != made  # a new one each time


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("diststorage.test", logging.WARNING, __file__, 1, message, (), None)
    for name, value in extra.items():
        setattr(made, name, value)
    RequestIdFilter().filter(made)
    return made


def test_a_json_line_holds_the_standard_keys_the_request_id_and_the_fields() -> None:
    token = current_request_id.set("REQ-42")
    try:
        line = json.loads(
            JsonFormatter().format(record("hello %s", **fields({"status": 200, "route": "x"})))
        )
    finally:
        current_request_id.reset(token)
    assert line.pop("ts").endswith("Z")
    assert line == {
        "level": "WARNING",
        "logger": "diststorage.test",
        "msg": "hello %s",
        "request_id": "REQ-42",
        "status": 200,
        "route": "x",
    }


def test_a_json_line_outside_a_request_has_a_null_id_and_keeps_its_traceback() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        made = record("failed")
        made.exc_info = sys.exc_info()
    line = json.loads(JsonFormatter().format(made))
    assert line["request_id"] is None
    assert "ValueError: boom" in line["exc"]
    assert "\n" not in JsonFormatter().format(made)  # one line, whatever it holds


def test_a_text_line_shows_the_id_and_the_fields_as_pairs() -> None:
    token = current_request_id.set("REQ-7")
    try:
        text = TextFormatter("gateway").format(record("request", **fields({"status": 404})))
    finally:
        current_request_id.reset(token)
    assert text.endswith("gateway WARNING diststorage.test [REQ-7]: request status=404")
    assert "[" not in TextFormatter("gateway").format(record("plain"))


def test_calls_to_nodes_carry_the_current_id_and_nothing_outside_a_request() -> None:
    assert grpc_metadata() is None
    token = current_request_id.set("REQ-9")
    try:
        assert grpc_metadata() == (("x-request-id", "REQ-9"),)
    finally:
        current_request_id.reset(token)
