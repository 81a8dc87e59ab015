"""The dashboard in a real browser (the distribution's Chromium, driven by Playwright) on a
real cluster: it loads cleanly and offline, follows a node's death and the repair after it
live, and refuses actions without a login and a CSRF token."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import chromium, log_in, watched_page
from conftest import TEST_ROOT, ClusterOptions, gateway_client
from playwright.async_api import Dialog, expect

from diststorage.local import LocalCluster
from diststorage.testing import Faults

# Live updates come every 2 s; a node is declared down 5 s after its last heartbeat here.
LIVE_TIMEOUT_MS = 30_000
REPAIR_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    # Seven nodes, so that ec:4+2 can rebuild on six distinct ones when one is gone; repair
    # waits (grace) until the test removes the dead node.
    return ClusterOptions(
        nodes=7,
        gateway_args=("--node-timeout", "5", "--node-suspect", "1.5", "--repair-grace", "3600"),
    )


@pytest.fixture(scope="module")
def objects(cluster: LocalCluster) -> Iterator[None]:
    client = gateway_client(cluster.url)
    for index in range(4):
        assert client.put(f"file-{index}", b"x" * 300_000).status == 201
    yield


async def test_the_overview_loads_without_errors_or_outside_requests(
    cluster: LocalCluster, objects: None, request: pytest.FixtureRequest
) -> None:
    async with chromium() as browser, watched_page(browser, request.node.name) as watched:
        page = watched.page
        await log_in(page, cluster.url, TEST_ROOT)
        await expect(page.locator("#health")).to_contain_text("Healthy")
        # The live stream is open and has replaced a panel: the throughput ring's first
        # sample arrives within a few seconds (the page was rendered before it).
        await expect(page.locator("#throughput")).to_contain_text("req/s", timeout=LIVE_TIMEOUT_MS)
        for path in ("/nodes", "/repair", "/events"):
            await page.goto(f"{cluster.url}/_/ui{path}")
            await expect(page.locator("main")).not_to_be_empty()
    assert watched.console_errors == []
    assert watched.outside_requests == []


async def test_an_action_needs_a_login_and_a_csrf_token(
    cluster: LocalCluster, objects: None, request: pytest.FixtureRequest
) -> None:
    client = gateway_client(cluster.url)
    node = client.nodes()[0]
    async with chromium() as browser, watched_page(browser, request.node.name) as watched:
        page = watched.page
        await page.goto(f"{cluster.url}/_/ui/nodes")
        await expect(page.locator("input[name=access_key_id]")).to_be_visible()
        # Without a session, even a well-formed POST is turned away.
        status = await page.evaluate(
            "url => fetch(url, {method: 'POST', body: new URLSearchParams({confirm: 'yes'})})"
            ".then(r => r.status)",
            f"/_/ui/nodes/{node['id']}/drain",
        )
        assert status == 401
        await log_in(page, cluster.url, TEST_ROOT, "/nodes")
        # Signed in, but without the page's CSRF token: refused.
        status = await page.evaluate(
            "url => fetch(url, {method: 'POST', body: new URLSearchParams({confirm: 'yes'})})"
            ".then(r => r.status)",
            f"/_/ui/nodes/{node['id']}/drain",
        )
        assert status == 403
        assert client.nodes()[0]["lifecycle"] == "active"
        # The button asks first (hx-confirm), then htmx sends the token itself.
        questions: list[str] = []

        async def accept(dialog: Dialog) -> None:
            questions.append(dialog.message)
            await dialog.accept()

        page.on("dialog", accept)
        row = page.locator(f"tr[data-node='{node['id']}']")
        await row.get_by_role("button", name="Drain…").click()
        await expect(page.locator("#action-result")).to_contain_text("is now draining")
        assert questions and questions[0].startswith("Drain ")
        assert next(n for n in client.nodes() if n["id"] == node["id"])["lifecycle"] == "draining"
        await expect(row.locator("td").nth(2)).to_contain_text("draining", timeout=LIVE_TIMEOUT_MS)
        await row.get_by_role("button", name="Activate…").click()
        await expect(page.locator("#action-result")).to_contain_text("is now active")
    # The two refusals above, and nothing else.
    assert len(watched.console_errors) == 2, watched.console_errors


async def test_a_dead_node_and_its_repair_show_live(
    cluster: LocalCluster, objects: None, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    client = gateway_client(cluster.url)
    # A node that holds chunks (another test drained one: repair emptied it).
    holder = max(client.nodes(), key=lambda n: n["chunks_in_use"])
    assert holder["chunks_in_use"] > 0
    node_id = holder["id"]
    victim = cluster.node_ports.index(int(holder["address"].rpartition(":")[2]))
    async with chromium() as browser, watched_page(browser, request.node.name) as watched:
        page = watched.page
        await log_in(page, cluster.url, TEST_ROOT)
        at_risk = page.locator("#durability rect[data-spare='1']")
        await expect(page.locator("#durability")).to_be_visible()
        assert await at_risk.count() == 0
        Faults(cluster).kill_node(victim)
        # No reload: the stream moves the node to down and the histogram gains the bar.
        await expect(at_risk).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        cell = page.locator(f"#heatmap .cell[data-node='{node_id}']")
        await expect(cell).to_have_attribute("data-state", "down")
        await expect(page.locator("#health")).to_contain_text("6 of 7 nodes writable")
        # The event watcher looks every 2 s on its own schedule: a node removed before its
        # next look would never be seen down, so the event is awaited before the removal.
        await page.goto(f"{cluster.url}/_/ui/events")
        events = page.locator("#events li")
        await expect(events.filter(has_text="node down")).not_to_have_count(
            0, timeout=LIVE_TIMEOUT_MS
        )
        await page.goto(f"{cluster.url}/_/ui")
        await expect(at_risk).to_have_count(1, timeout=LIVE_TIMEOUT_MS)
        # The operator gives the node up: repair rebuilds its chunks on the other six.
        client.remove_node(node_id, force=True)
        await expect(at_risk).to_have_count(0, timeout=REPAIR_TIMEOUT_MS)
        await expect(page.locator("#repair-eta")).to_have_text("–")
        await page.goto(f"{cluster.url}/_/ui/events")
        await expect(events.filter(has_text="repair finished")).not_to_have_count(
            0, timeout=LIVE_TIMEOUT_MS
        )
    assert watched.console_errors == []
