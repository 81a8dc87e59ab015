"""Playwright driving the distribution's Chromium (never a downloaded browser): where it is,
how it is launched, and a page that records console errors and blocks every request that
would leave the loopback interface.

``DISTSTORAGE_CHROMIUM`` names the browser (default /usr/bin/chromium). Without it the browser
tests are skipped, saying so, except in CI (``CI=true``), where a missing browser fails them:
`.ci/run` installs it.
"""

from __future__ import annotations

import os
import re
import shutil
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Page, Route, async_playwright

from diststorage.core.credentials import Credentials

CHROMIUM_ENV = "DISTSTORAGE_CHROMIUM"
DEFAULT_CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "screenshots"
# What keeps a headless Chromium from calling home (updates, sync, QUIC probes).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}


def chromium_path() -> str:
    path = os.environ.get(CHROMIUM_ENV, DEFAULT_CHROMIUM)
    if shutil.which(path) is None:
        reason = f"no Chromium at {path} (apt-get install chromium, or set {CHROMIUM_ENV})"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return path


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


@dataclass
class Watched:
    page: Page
    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)


@asynccontextmanager
async def watched_page(browser: Browser, name: str) -> AsyncIterator[Watched]:
    """A fresh context's page. Requests to anything but loopback are recorded and aborted;
    console errors and uncaught exceptions are recorded. On failure, a screenshot of the page
    goes to screenshots/<name>.png."""
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    watched = Watched(page)

    async def route(route: Route) -> None:
        host = urllib.parse.urlsplit(route.request.url).hostname or ""
        if host in LOOPBACK_HOSTS:
            await route.continue_()
        else:
            watched.outside_requests.append(route.request.url)
            await route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            watched.console_errors.append(message.text)

    await page.route("**/*", route)
    page.on("console", console)
    page.on("pageerror", lambda error: watched.console_errors.append(str(error)))
    try:
        yield watched
    except BaseException:
        SCREENSHOTS.mkdir(exist_ok=True)
        picture = re.sub(r"\W+", "-", name) + ".png"
        await page.screenshot(path=str(SCREENSHOTS / picture))
        raise
    finally:
        await context.close()


async def log_in(page: Page, base_url: str, credentials: Credentials, path: str = "") -> None:
    """Opens ``path`` of the dashboard, lands on the login form, signs in, and is sent back."""
    await page.goto(f"{base_url}/_/ui{path}")
    await page.fill("input[name=access_key_id]", credentials.access_key_id)
    await page.fill("input[name=secret_access_key]", credentials.secret_access_key)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
