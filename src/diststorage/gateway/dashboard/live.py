"""Live panels over Server-Sent Events, from one snapshot producer per gateway.

However many tabs are open, the gateway builds one snapshot every ``SNAPSHOT_INTERVAL_S``
while at least one listens, and none while nobody does: each panel any listener wants is
rendered once (the same partial its page included) and handed to every listener that wants
it, only when its HTML changed since that listener last got it. A listener keeps at most one
pending HTML per panel (a slow one gets the newest, never a queue), so memory is bounded by
listeners × panels. aiohttp-sse sends a comment every ``PING_INTERVAL_S`` in between, so
proxies that close idle connections (haproxy's ``timeout client``) keep the stream.

Alongside, every ``SAMPLE_INTERVAL_S`` whether anyone listens or not, the throughput ring
takes a sample and the event watcher compares what it sees (both cheap, without the
database but for the lease holder now and then).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable, Iterator

from aiohttp import web
from aiohttp_sse import sse_response

from diststorage.core.errors import DiststorageError
from diststorage.gateway.dashboard.panels import PANELS, Panel, Snapshots
from diststorage.gateway.dashboard.session import CSRF_FIELD
from diststorage.gateway.dashboard.templating import Templates
from diststorage.gateway.dashboard.throughput import SAMPLE_INTERVAL_S, Throughput
from diststorage.gateway.dashboard.watcher import EventWatcher

log = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_S = 2.0
PING_INTERVAL_S = 15.0
MAX_LISTENERS = 100


class Listener:
    def __init__(self, panels: frozenset[Panel]) -> None:
        self.panels = panels
        self.sent: dict[str, str] = {}  # what it was last given, per panel
        self.pending: dict[str, str] = {}
        self.ready = asyncio.Event()

    def offer(self, rendered: dict[str, str]) -> None:
        for panel in self.panels:
            html = rendered.get(panel.name)
            if html is not None and self.sent.get(panel.name) != html:
                self.pending[panel.name] = html
                self.sent[panel.name] = html
        if self.pending:
            self.ready.set()

    def take(self) -> dict[str, str]:
        taken, self.pending = self.pending, {}
        self.ready.clear()
        return taken


class LiveUpdates:
    def __init__(
        self,
        snapshots: Snapshots,
        templates: Templates,
        throughput: Throughput,
        watcher: EventWatcher,
        interval_s: float = SNAPSHOT_INTERVAL_S,
    ) -> None:
        self._snapshots = snapshots
        self._templates = templates
        self._throughput = throughput
        self._watcher = watcher
        self._interval_s = interval_s
        self._listeners: set[Listener] = set()
        self._anyone = asyncio.Event()
        self.snapshots_made = 0  # for tests: one per interval, not one per listener

    @property
    def listeners(self) -> int:
        return len(self._listeners)

    @contextlib.contextmanager
    def listening(self, panels: Iterable[Panel]) -> Iterator[Listener]:
        listener = Listener(frozenset(panels))
        self._listeners.add(listener)
        self._anyone.set()
        try:
            yield listener
        finally:
            self._listeners.discard(listener)
            if not self._listeners:
                self._anyone.clear()

    async def render(self, panels: Iterable[Panel]) -> dict[str, str]:
        wanted = list(panels)
        # One rendering for every session: no session's CSRF token in it (the forms of a live
        # panel are sent by htmx, which adds the token of the page it runs in).
        context = {
            "csrf_field": CSRF_FIELD,
            "csrf_token": "",
            **await self._snapshots.gather(wanted),
        }
        return {p.name: await self._templates.render(p.template, context) for p in wanted}

    async def produce(self) -> None:
        """Snapshots while anyone listens; runs until cancelled."""
        while True:
            await self._anyone.wait()
            wanted: set[Panel] = set()
            for listener in self._listeners:
                wanted |= listener.panels
            try:
                rendered = await self.render(wanted)
            except DiststorageError as error:
                log.warning("dashboard snapshot failed: %s", error)
            except Exception:
                # A bug in one panel must not end the live updates of every tab for good.
                log.exception("dashboard snapshot failed")
            else:
                self.snapshots_made += 1
                for listener in list(self._listeners):
                    listener.offer(rendered)
            await asyncio.sleep(self._interval_s)

    async def sample(self) -> None:
        """Throughput samples and event comparisons; runs until cancelled."""
        while True:
            self._throughput.take(time.time())
            try:
                await self._watcher.observe()
            except DiststorageError as error:
                log.warning("dashboard event watch failed: %s", error)
            await asyncio.sleep(SAMPLE_INTERVAL_S)


LIVE: web.AppKey[LiveUpdates] = web.AppKey("dashboard_live", LiveUpdates)


def wanted_panels(query: str) -> list[Panel]:
    """``?panels=health,repair`` → those panels; unknown names are ignored."""
    return [PANELS[name] for name in query.split(",") if name in PANELS]


async def stream(request: web.Request) -> web.StreamResponse:
    """``GET /_/ui/live?panels=a,b``: an event per panel (named after it) whenever its HTML
    changes, the first for each at once."""
    live = request.app[LIVE]
    panels = wanted_panels(request.query.get("panels", ""))
    if not panels:
        raise web.HTTPBadRequest(text="name the panels: ?panels=health,repair")
    if live.listeners >= MAX_LISTENERS:
        raise web.HTTPServiceUnavailable(text="too many live dashboards open on this gateway")
    async with sse_response(request, ping_interval=PING_INTERVAL_S) as response:
        with live.listening(panels) as listener:
            while response.is_connected():
                await listener.ready.wait()
                for name, html in listener.take().items():
                    await response.send(html, event=name)
    return response


async def _run_live(app: web.Application) -> AsyncIterator[None]:
    """The producer and the sampler, from the server's start to its cleanup. Started and
    ended in different tasks (the server's setup and cleanup), hence no TaskGroup here."""
    live = app[LIVE]
    tasks = [asyncio.create_task(live.produce()), asyncio.create_task(live.sample())]
    yield
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/live", stream)
    app.cleanup_ctx.append(_run_live)
