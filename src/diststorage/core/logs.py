"""Log lines of every daemon: the stdlib's ``logging``, as text (the default) or as one JSON
object per line (``--log-format json``), for a log shipper to index.

Every line carries the id of the request it was logged for (``core.request_ids``), stamped by
a filter on the handler, so that a line from deep inside the read pipeline, or from a node,
joins the access line of its request. A line may carry fields of its own
(``log.info("request", extra=fields({...}))``): the JSON format puts them beside the standard
keys, the text format appends them as ``key=value``. A JSON line::

    {"ts": "2026-12-01T09:30:00.123Z", "level": "INFO", "logger": "diststorage.access",
     "msg": "request", "request_id": "3F2A…", "method": "GET", "status": 200, ...}
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from diststorage.core.request_ids import current_request_id

_FIELDS = "diststorage_fields"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


def fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """``extra=`` for a log call whose line carries these fields."""
    return {_FIELDS: dict(values)}


def fields_of(record: logging.LogRecord) -> Mapping[str, Any]:
    found = getattr(record, _FIELDS, None)
    return found if isinstance(found, dict) else {}


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request's id (None outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id.get()
        return True


def _timestamp(created: float) -> str:
    """UTC, ISO 8601, milliseconds: what log shippers parse without being told how."""
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, request_id, the record's own fields,
    and ``exc`` with the traceback when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for name, value in fields_of(record).items():
            line.setdefault(name, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``TIME DAEMON LEVEL LOGGER [REQUEST_ID]: message key=value ...``."""

    def __init__(self, daemon: str) -> None:
        super().__init__(f"%(asctime)s {daemon} %(levelname)s %(name)s%(request_tag)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request_tag = f" [{request_id}]" if request_id else ""
        text = super().format(record)
        extra = fields_of(record)
        if not extra:
            return text
        head, newline, rest = text.partition("\n")  # a traceback stays below the fields
        pairs = " ".join(f"{name}={value}" for name, value in extra.items())
        return f"{head} {pairs}{newline}{rest}"


def configure_logging(daemon: str, log_format: LogFormat, level: int = logging.INFO) -> None:
    """The root logger writes to stderr in ``log_format``; unless configured already (a test
    that runs a daemon in process keeps its own handlers)."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    formatter = JsonFormatter() if log_format is LogFormat.JSON else TextFormatter(daemon)
    handler.setFormatter(formatter)
    root.addHandler(handler)
    root.setLevel(level)
