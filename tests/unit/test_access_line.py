"""The access line of a request whose client went away (gateway/http/access.py): 499 while
the answer was still going out, the answer's own status and size once its whole body had gone
out (a client that closes the moment it has every byte can cancel the handler's last steps)."""

from __future__ import annotations

import asyncio
import logging

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from prometheus_client import CollectorRegistry

from diststorage.core.logs import fields_of
from diststorage.gateway.http.access import ANSWER_SENT, HttpMetrics, access_middleware


def _middleware() -> object:
    metrics = HttpMetrics(CollectorRegistry(), {"native": ("object",)})
    return access_middleware("native", lambda request: "object", metrics)


async def _cancelled_after(sent: bool, caplog: pytest.LogCaptureFixture) -> logging.LogRecord:
    request = make_mocked_request("GET", "/k")

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200)
        response.content_length = 300_000
        if sent:
            request[ANSWER_SENT] = response
        raise asyncio.CancelledError

    middleware = _middleware()
    with caplog.at_level(logging.INFO, "diststorage.access"), pytest.raises(asyncio.CancelledError):
        await middleware(request, handler)  # type: ignore[operator]
    (record,) = [r for r in caplog.records if r.name == "diststorage.access"]
    return record


async def test_a_client_gone_before_the_whole_answer_is_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = fields_of(await _cancelled_after(False, caplog))
    assert (line["status"], line["bytes_out"]) == (499, 0)


async def test_a_client_gone_after_the_whole_answer_is_logged_as_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    line = fields_of(await _cancelled_after(True, caplog))
    assert (line["status"], line["bytes_out"]) == (200, 300_000)
