"""The dashboard's pages and live fragments read as HTML from a real cluster: the numbers the
JSON routes give, one row and one heatmap cell per node, the live stream's first events, and
node actions that ask before they act."""

from __future__ import annotations

import asyncio

import aiohttp
from conftest import TEST_ROOT, gateway_client
from dashboard_support import UI, Document, csrf_token_of, read_events, signed_in

from diststorage.gateway.dashboard.templating import human_bytes
from diststorage.local import LocalCluster


async def _page(session: aiohttp.ClientSession, path: str) -> str:
    async with session.get(UI + path) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/html")
        return await response.text()


async def test_the_overview_shows_the_health_and_capacity_the_api_reports(
    cluster: LocalCluster,
) -> None:
    client = gateway_client(cluster.url)
    _, health = client.health()
    nodes = client.nodes()
    async with signed_in(cluster.url, TEST_ROOT) as session:
        page = Document(await _page(session, ""))
    banner = page.by_id("health").text
    assert "Healthy" in banner
    assert f"{health['writable_nodes']} of {health['total_nodes']} nodes writable" in banner
    raw = sum(n["capacity"] for n in nodes)
    free = sum(n["free"] for n in nodes)
    assert page.by_id("capacity-raw").text.startswith(human_bytes(raw))
    assert human_bytes(free * 4 // 6) in page.by_id("capacity-usable").text
    # Nothing is at risk: any stripe there is sits in the full bar (ec:4+2 can lose 2).
    durability = page.by_id("durability")
    assert "can lose 2" in durability.text
    assert {r.attrs["data-spare"] for r in page.all("rect") if "data-spare" in r.attrs} <= {"2"}
    assert page.by_id("repair-backlog").text.startswith("0 stripes below target")
    # Each live panel sits in the element its SSE event replaces.
    for panel in ("health", "durability", "repair", "throughput", "capacity"):
        assert page.by_id(panel).attrs["sse-swap"] == panel


async def test_the_nodes_screen_has_a_row_and_a_cell_per_node(cluster: LocalCluster) -> None:
    nodes = gateway_client(cluster.url).nodes()
    async with signed_in(cluster.url, TEST_ROOT) as session:
        page = Document(await _page(session, "/nodes"))
    rows = page.all("tr")[1:]
    assert {r.attrs["data-node"] for r in rows} == {n["id"] for n in nodes}
    cells = page.all("div", cls="cell")
    assert {c.attrs["data-node"] for c in cells} == {n["id"] for n in nodes}
    assert all(c.attrs["data-state"] == "up" for c in cells)
    for node in nodes:
        row = next(r for r in rows if r.attrs["data-node"] == node["id"])
        assert node["address"] in row.text
        assert str(node["chunks"]) in row.text


async def test_the_live_stream_sends_each_panel_at_once(cluster: LocalCluster) -> None:
    async with (
        signed_in(cluster.url, TEST_ROOT) as session,
        session.get(UI + "/live?panels=health,nodes") as response,
    ):
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        async with asyncio.timeout(20):
            seen = await read_events(response, 2)
    assert "nodes writable" in seen["health"]
    assert seen["nodes"].count("<tr data-node=") == cluster.nodes


async def test_a_stream_of_unknown_panels_is_refused(cluster: LocalCluster) -> None:
    async with (
        signed_in(cluster.url, TEST_ROOT) as session,
        session.get(UI + "/live?panels=nothing") as response,
    ):
        assert response.status == 400


async def test_a_drain_asks_first_then_drains(cluster: LocalCluster) -> None:
    client = gateway_client(cluster.url)
    node = client.nodes()[0]
    action = f"{UI}/nodes/{node['id']}/drain"
    async with signed_in(cluster.url, TEST_ROOT) as session:
        token = csrf_token_of(await _page(session, "/nodes"))
        async with session.post(action, data={"csrf": token}) as response:
            assert response.status == 200
            confirm = Document(await response.text())
        assert "Drain" in confirm.by_id("question").text
        assert [i.attrs["value"] for i in confirm.all("input") if i.attrs["name"] == "confirm"] == [
            "yes"
        ]
        assert next(n for n in client.nodes() if n["id"] == node["id"])["lifecycle"] == "active"
        form = {"csrf": token, "confirm": "yes"}
        async with session.post(action, data=form, allow_redirects=False) as response:
            assert response.status == 303
            assert response.headers["Location"] == UI + "/nodes"
        assert next(n for n in client.nodes() if n["id"] == node["id"])["lifecycle"] == "draining"
        # With htmx, the answer is a line for the page, not a redirect.
        headers = {"HX-Request": "true"}
        async with session.post(
            f"{UI}/nodes/{node['id']}/activate", data=form, headers=headers
        ) as response:
            assert response.status == 200
            assert "is now active" in await response.text()
    assert next(n for n in client.nodes() if n["id"] == node["id"])["lifecycle"] == "active"


async def test_an_action_without_a_session_is_refused(cluster: LocalCluster) -> None:
    node = gateway_client(cluster.url).nodes()[0]
    form = {"confirm": "yes"}
    async with (
        aiohttp.ClientSession(cluster.url) as session,
        session.post(f"{UI}/nodes/{node['id']}/drain", data=form) as response,
    ):
        assert response.status == 401
    assert gateway_client(cluster.url).nodes()[0]["lifecycle"] == "active"


async def test_the_repair_and_events_screens_render(cluster: LocalCluster) -> None:
    async with signed_in(cluster.url, TEST_ROOT) as session:
        repair = Document(await _page(session, "/repair"))
        events = Document(await _page(session, "/events"))
    assert "No segment is queued for repair." in repair.by_id("at_risk").text
    assert "Chunks deleted" in repair.by_id("garbage").text
    # This gateway heard every node come up after it started.
    kinds = [li.attrs["data-kind"] for li in events.all("li")]
    assert kinds.count("node up") >= cluster.nodes
