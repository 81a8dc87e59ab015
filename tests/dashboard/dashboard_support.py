"""Helpers of the dashboard's tests: a signed-in aiohttp session on a gateway's dashboard, and
an HTML reader that finds elements by id and class (the standard library's parser)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from html.parser import HTMLParser

import aiohttp

from diststorage.core.credentials import Credentials

UI = "/_/ui"


@asynccontextmanager
async def browser_session(base_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    """A client that keeps cookies (also the Secure ones, on a loopback HTTP URL)."""
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(base_url, cookie_jar=jar, timeout=timeout) as session:
        yield session


async def sign_in(session: aiohttp.ClientSession, credentials: Credentials) -> None:
    form = {
        "access_key_id": credentials.access_key_id,
        "secret_access_key": credentials.secret_access_key,
        "next": UI,
    }
    async with session.post(UI + "/login", data=form, allow_redirects=False) as response:
        assert response.status == 303, await response.text()
        assert response.headers["Location"] == UI


@asynccontextmanager
async def signed_in(
    base_url: str, credentials: Credentials
) -> AsyncIterator[aiohttp.ClientSession]:
    async with browser_session(base_url) as session:
        await sign_in(session, credentials)
        yield session


async def read_events(response: aiohttp.ClientResponse, count: int) -> dict[str, str]:
    """The next ``count`` Server-Sent Events: name → data (lines joined by newlines)."""
    events: dict[str, str] = {}
    name, data = "message", []
    while len(events) < count:
        line = (await response.content.readline()).decode().rstrip("\r\n")
        if line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").removeprefix(" "))
        elif not line and data:
            events[name] = "\n".join(data)
            name, data = "message", []
    return events


def csrf_token_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match is not None, page
    return match[1]


class Element:
    def __init__(self, tag: str, attrs: dict[str, str]) -> None:
        self.tag = tag
        self.attrs = attrs
        self.text_parts: list[str] = []
        self.children: list[Element] = []

    @property
    def text(self) -> str:
        parts = list(self.text_parts)
        for child in self.children:
            parts.append(child.text)
        return " ".join(p.strip() for p in parts if p.strip())

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())


_VOID = {"meta", "link", "input", "br", "img", "hr", "rect", "line", "path", "circle"}


class Document(HTMLParser):
    """A page parsed into a tree of Elements (good enough for our own, well-formed HTML)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#root", {})
        self._stack = [self.root]
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self._stack[-1].children.append(element)
        if tag not in _VOID:
            self._stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._stack) - 1, 0, -1):
            if self._stack[depth].tag == tag:
                del self._stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self._stack[-1].text_parts.append(data)

    def all(self, tag: str | None = None, cls: str | None = None) -> list[Element]:
        found: list[Element] = []

        def walk(element: Element) -> None:
            for child in element.children:
                if (tag is None or child.tag == tag) and (cls is None or cls in child.classes):
                    found.append(child)
                walk(child)

        walk(self.root)
        return found

    def by_id(self, element_id: str) -> Element:
        matches = [e for e in self.all() if e.attrs.get("id") == element_id]
        assert len(matches) == 1, f"{len(matches)} elements with id {element_id!r}"
        return matches[0]
