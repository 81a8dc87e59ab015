"""The Objects screen on a real cluster, read as HTML with the aiohttp client: the bucket list,
folders and pages of a listing, the object page's figures and shard grid (the same numbers as
``GET /_/objects/{key}/layout``), pages of segments, and hostile keys escaped everywhere.
The last test drives Chromium through Playwright: the grid seen in a browser, a killed node's
shards turning "down".

Small stripes, two per segment, so that objects of a few hundred kilobytes have many segments;
repair is off, so that a killed node's shards stay where they were for the page to show.
"""

from __future__ import annotations

import re
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from browser_support import chromium, log_in, watched_page
from conftest import (
    TEST_ROOT,
    ClusterOptions,
    gateway_client,
    md5_hex,
    node_ids,
    object_chunks,
    random_bytes,
    restore_nodes,
    s3_client,
    upload_in_parts,
)
from dashboard_support import UI, Document, Element, browser_session, signed_in

from diststorage.client import Client
from diststorage.local import LocalCluster
from diststorage.testing import Faults

STRIPE = 16 * 1024
SEGMENT_STRIPES = 2
SEGMENT = STRIPE * SEGMENT_STRIPES
NODE_TIMEOUT_S = 3.0

HOSTILE_KEYS = [
    "<script>alert(1)</script>",
    "\"double\" 'single' & <b>bold</b>",
    "%41%2F%2e%2e 100%",
    "a/../../etc/passwd",
    "plus+and space?query#fragment",
    "ключ/☃/🙂",
    "long/" + "é" * 505,  # with "hostile/", 1023 of the 1024 bytes a key may have
]


@pytest.fixture(scope="module")
def cluster_options() -> ClusterOptions:
    return ClusterOptions(
        gateway_args=(
            "--stripe-size",
            str(STRIPE),
            "--node-timeout",
            str(NODE_TIMEOUT_S),
            "--node-suspect",
            "1.5",
            "--no-repair",
        ),
        env={
            "DISTSTORAGE_GATEWAY_SEGMENT_MAX_STRIPES": str(SEGMENT_STRIPES),
            "DISTSTORAGE_GATEWAY_MULTIPART_MIN_PART_BYTES": "0",
        },
    )


@pytest.fixture(autouse=True)
def nodes_back(cluster: LocalCluster, http: Client) -> Iterator[None]:
    yield
    restore_nodes(cluster, http)


def put(http: Client, key: str, data: bytes, policy: str | None = "ec:4+2") -> None:
    created = http.put(key, data, {"X-Redundancy": policy} if policy else {})
    assert created.status == 201, created.body


def layout_json(http: Client, key: str, **query: str | int) -> dict[str, Any]:
    path = f"/_/objects/{urllib.parse.quote(key, safe='')}/layout"
    if query:
        path += "?" + urllib.parse.urlencode(query)
    response = http.request("GET", path)
    assert response.status == 200, response.body[:300]
    document: dict[str, Any] = response.json()
    return document


async def get_page(session: aiohttp.ClientSession, url: str, status: int = 200) -> str:
    async with session.get(url, allow_redirects=False) as response:
        text = await response.text()
        assert response.status == status, (url, response.status, text[:500])
        return text


def object_page_url(key: str, bucket: str = "default", **query: str | int) -> str:
    params = {"bucket": bucket, "key": key, **{k: str(v) for k, v in query.items()}}
    return f"{UI}/objects/object?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def listing_url(bucket: str, prefix: str = "", **query: str | int) -> str:
    params = {"bucket": bucket, **({"prefix": prefix} if prefix else {})}
    params |= {k: str(v) for k, v in query.items()}
    return f"{UI}/objects?" + urllib.parse.urlencode(params, quote_via=urllib.parse.quote)


def grid_cells(document: Document) -> list[Element]:
    return document.all("td", "shard")


def grid_of(document: Document) -> list[tuple[int, list[tuple[int, str, str]]]]:
    """Each row of the grid: (segment, [(shard, state, node id)])."""
    rows = []
    for row in document.all("tr", "segment"):
        cells = [
            (int(c.attrs["data-shard"]), c.attrs["data-state"], c.attrs["data-node"])
            for c in row.children
            if c.tag == "td" and "shard" in c.classes and "data-shard" in c.attrs
        ]
        rows.append((int(row.attrs["data-segment"]), cells))
    return rows


def json_grid(layout: dict[str, Any]) -> list[tuple[int, list[tuple[int, str, str]]]]:
    return [
        (
            s["segment_index"],
            [(c["shard_index"], c["state"], c["node"] or "") for c in s["shards"]],
        )
        for s in layout["segments"]
    ]


# -- the bucket list and listings ------------------------------------------------------------


async def test_without_a_session_the_screen_sends_to_the_login(cluster: LocalCluster) -> None:
    async with (
        browser_session(cluster.url) as session,
        session.get(UI + "/objects?bucket=default", allow_redirects=False) as answer,
    ):
        assert answer.status == 303
        assert answer.headers["Location"].startswith(UI + "/login?next=")


async def test_the_bucket_list_links_each_bucket(cluster: LocalCluster) -> None:
    gateway_client(cluster.url).accounts.create_bucket("screen-photos")
    async with signed_in(cluster.url, TEST_ROOT) as session:
        page = Document(await get_page(session, UI + "/objects"))
    links = {
        a.text: a.attrs["href"]
        for row in page.all("tr", "bucket")
        for a in row.children[0].children
        if a.tag == "a"
    }
    assert links["default"] == f"{UI}/objects?bucket=default"
    assert links["screen-photos"] == f"{UI}/objects?bucket=screen-photos"
    nav = [a for a in page.all("a") if a.attrs.get("aria-current") == "page"]
    assert [a.text for a in nav] == ["Objects"]


async def test_a_listing_shows_folders_and_objects_and_pages_through_them(
    cluster: LocalCluster, http: Client
) -> None:
    keys = [f"paged/{n:02d}" for n in range(23)]
    for key in keys:
        put(http, key, b"x", policy=None)
    for key in ("paged/sub/a", "paged/sub/b", "paged/zz/c"):
        put(http, key, b"y", policy=None)
    seen: list[tuple[str, str]] = []
    pages = 0
    url: str | None = listing_url("default", "paged/", limit=10)
    async with signed_in(cluster.url, TEST_ROOT) as session:
        while url is not None:
            page = Document(await get_page(session, url))
            pages += 1
            rows = page.all("tr", "entry")
            assert 1 <= len(rows) <= 10
            seen.extend(
                ("folder" if "folder" in r.classes else "object", r.attrs["data-key"]) for r in rows
            )
            following = [a for a in page.all("a") if a.attrs.get("id") == "next-page"]
            url = following[0].attrs["href"] if following else None
            if pages > 1:
                assert page.by_id("first-page").attrs["href"] == listing_url(
                    "default", "paged/", limit=10
                )
    # 23 objects and two folders, each once, in key order; a folder's keys are not listed.
    assert pages == 3
    assert seen == [("object", k) for k in keys] + [
        ("folder", "paged/sub/"),
        ("folder", "paged/zz/"),
    ]


async def test_a_folder_lists_what_is_under_it_with_its_crumbs(
    cluster: LocalCluster, http: Client
) -> None:
    put(http, "crumbs/deep/down/file.txt", random_bytes(3000), policy=None)
    async with signed_in(cluster.url, TEST_ROOT) as session:
        page = Document(await get_page(session, listing_url("default", "crumbs/deep/")))
    crumbs = [(a.text, a.attrs["href"]) for a in page.all("a", "crumb")]
    assert crumbs == [
        ("default", f"{UI}/objects?bucket=default"),
        ("crumbs/", listing_url("default", "crumbs/")),
        ("deep/", listing_url("default", "crumbs/deep/")),
    ]
    (row,) = page.all("tr", "entry")
    assert ("folder" in row.classes, row.attrs["data-key"]) == (True, "crumbs/deep/down/")
    async with signed_in(cluster.url, TEST_ROOT) as session:
        # A prefix alone lists the native API's bucket.
        native = Document(await get_page(session, f"{UI}/objects?prefix=crumbs%2Fdeep%2F"))
    assert [r.attrs["data-key"] for r in native.all("tr", "entry")] == ["crumbs/deep/down/"]
    assert "down/" in row.text
    assert "crumbs/deep/down/" not in row.text  # shown inside its folder


async def test_an_unknown_bucket_and_a_bad_page_are_refused(cluster: LocalCluster) -> None:
    async with signed_in(cluster.url, TEST_ROOT) as session:
        page = await get_page(session, listing_url("no-such-bucket"), 404)
        assert "There is no bucket" in page
        refused = await get_page(session, listing_url("default", limit=0), 400)
        assert "limit must be a whole number" in refused


# -- the object page -------------------------------------------------------------------------


async def test_the_object_page_shows_the_layout_routes_numbers(
    cluster: LocalCluster, http: Client
) -> None:
    data = random_bytes(6 * SEGMENT + 7)
    put(http, "page/numbers", data)
    layout = layout_json(http, "page/numbers", limit=1000)
    async with signed_in(cluster.url, TEST_ROOT) as session:
        page = Document(await get_page(session, object_page_url("page/numbers", limit=1000)))
    assert page.by_id("object-key").text == "page/numbers"
    assert page.by_id("meta-size").attrs["data-bytes"] == str(len(data))
    assert f"{len(data):,} bytes" in page.by_id("meta-size").text
    assert page.by_id("meta-md5").text == md5_hex(data) == layout["md5"]
    assert page.by_id("meta-etag").text == layout["etag"]
    assert page.by_id("meta-redundancy").text == "ec:4+2"
    assert page.by_id("meta-content-type").text == layout["content_type"]
    assert page.by_id("meta-created").text == layout["last_modified"]
    assert page.by_id("meta-segments").text == "7"
    assert page.by_id("segment-range").text.startswith("Segments 1–7 of 7")
    assert grid_of(page) == json_grid(layout)
    # Where the metadata puts each shard, on six distinct nodes; every cell says "ok" in words.
    placed = {(c.segment, c.shard): c.node for c in object_chunks(cluster, "page/numbers")}
    ids = node_ids(cluster)
    for segment, cells in grid_of(page):
        assert [ids[node] for _, _, node in cells] == [placed[(segment, i)] for i in range(6)]
    for cell in grid_cells(page):
        (state,) = [c for c in cell.children if "state" in c.classes]
        assert state.text == "ok"
        assert cell.attrs["data-node"][:8] in cell.text
    spares = [td for td in page.all("td", "spare")]
    assert [td.text for td in spares] == ["2 of 2 nodes"] * 7
    assert all("spare-full" in td.classes for td in spares)


async def test_segments_come_a_page_at_a_time(cluster: LocalCluster, http: Client) -> None:
    put(http, "page/segments", random_bytes(6 * SEGMENT + 7))
    layout = layout_json(http, "page/segments", limit=1000)
    rows: list[tuple[int, list[tuple[int, str, str]]]] = []
    url: str | None = object_page_url("page/segments", limit=3)
    async with signed_in(cluster.url, TEST_ROOT) as session:
        while url is not None:
            page = Document(await get_page(session, url))
            rows.extend(grid_of(page))
            following = [a for a in page.all("a") if a.attrs.get("id") == "next-segments"]
            url = following[0].attrs["href"] if following else None
            if following:
                # The pager also names the grid alone, for htmx to swap in.
                fragment = await get_page(session, following[0].attrs["hx-get"])
                assert "<html" not in fragment
                assert 'id="shard-grid"' in fragment
        last = Document(await get_page(session, object_page_url("page/segments", start=6, limit=3)))
    assert rows == json_grid(layout)
    assert last.by_id("segment-range").text.startswith("Segments 7–7 of 7")
    assert last.by_id("previous-segments").attrs["href"] == object_page_url(
        "page/segments", start=3, limit=3
    )


async def test_an_object_of_another_bucket_completed_from_parts(cluster: LocalCluster) -> None:
    s3 = s3_client(cluster)
    s3.create_bucket(Bucket="screen-parts")
    parts = [random_bytes(2 * SEGMENT), random_bytes(SEGMENT + 1), b"inline tail"]
    upload_in_parts(s3, "screen-parts", "joined", parts)
    http = gateway_client(cluster.url)
    layout = layout_json(http, "joined", bucket="screen-parts")
    async with signed_in(cluster.url, TEST_ROOT) as session:
        listing = Document(await get_page(session, listing_url("screen-parts")))
        (row,) = listing.all("tr", "entry")
        assert row.attrs["data-key"] == "joined"
        href = row.children[0].children[0].attrs["href"]
        assert href == object_page_url("joined", bucket="screen-parts")
        page = Document(await get_page(session, href))
    assert page.by_id("meta-parts").text == "3 (1 kept inline)"
    assert page.by_id("meta-size").attrs["data-bytes"] == str(sum(map(len, parts)))
    labels = [row.children[0].children[0].text for row in page.all("tr", "segment")]
    assert labels == [
        "part 0 · segment 0",
        "part 0 · segment 1",
        "part 1 · segment 0",
        "part 1 · segment 1",
    ]
    assert grid_of(page) == json_grid(layout)
    assert "1 inline part holds no segment" in page.by_id("segment-range").text


async def test_an_inline_object_says_it_has_no_shards(cluster: LocalCluster, http: Client) -> None:
    put(http, "page/inline", b"tiny", policy=None)
    async with signed_in(cluster.url, TEST_ROOT) as session:
        page = Document(await get_page(session, object_page_url("page/inline")))
    assert page.by_id("meta-redundancy").text == "inline"
    assert "in the metadata database" in page.by_id("inline-note").text
    assert grid_cells(page) == []


async def test_a_missing_object_is_a_404_page(cluster: LocalCluster) -> None:
    async with signed_in(cluster.url, TEST_ROOT) as session:
        page = Document(await get_page(session, object_page_url("page/<nothing>"), 404))
        assert page.by_id("missing-key").text == "page/<nothing>"
        refused = await get_page(session, f"{UI}/objects/object?bucket=default", 400)
        assert "needs a key" in refused


# -- hostile keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("key", HOSTILE_KEYS)
async def test_hostile_keys_are_escaped_and_link_to_themselves(
    cluster: LocalCluster, http: Client, key: str
) -> None:
    full = f"hostile/{key}"
    put(http, full, b"odd", policy=None)
    folder = full[: full.rfind("/") + 1]
    async with signed_in(cluster.url, TEST_ROOT) as session:
        raw_listing = await get_page(session, listing_url("default", folder))
        listing = Document(raw_listing)
        (row,) = [r for r in listing.all("tr", "entry") if r.attrs["data-key"] == full]
        href = row.children[0].children[0].attrs["href"]
        raw_object = await get_page(session, href)
    for raw in (raw_listing, raw_object):
        assert "<script>alert" not in raw
        assert "<b>bold" not in raw
    assert Document(raw_object).by_id("object-key").text == full
    # The link is the object page's URL, the key in its query, percent-encoded.
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(href).query)
    assert query == {"bucket": ["default"], "key": [full]}
    assert " " not in href and "+" not in href.replace("%2B", "")


async def test_a_hostile_key_with_shards(cluster: LocalCluster, http: Client) -> None:
    key = HOSTILE_KEYS[0] + "/../" + HOSTILE_KEYS[1]
    put(http, key, random_bytes(SEGMENT + 1))
    async with signed_in(cluster.url, TEST_ROOT) as session:
        raw = await get_page(session, object_page_url(key))
    assert "<script>alert" not in raw
    page = Document(raw)
    assert page.by_id("object-key").text == key
    assert grid_of(page) == json_grid(layout_json(http, key))


# -- in a browser ------------------------------------------------------------------------------


async def test_a_browser_sees_the_grid_and_a_killed_nodes_shards_go_down(
    cluster: LocalCluster, http: Client
) -> None:
    put(http, "browser/object", random_bytes(3 * SEGMENT))
    victim = next(c for c in object_chunks(cluster, "browser/object") if c.segment == 0)
    victim_id = next(i for i, index in node_ids(cluster).items() if index == victim.node)
    path = object_page_url("browser/object").removeprefix(UI)
    async with chromium() as browser, watched_page(browser, "objects-grid") as watched:
        page = watched.page
        # The login form first; it sends the browser on to the object page.
        await log_in(page, cluster.url, TEST_ROOT, path)
        await page.wait_for_selector("#shard-grid")
        assert await page.locator("#object-key").text_content() == "browser/object"
        assert await page.locator("td.shard").count() == 3 * 6
        assert await page.locator('td.shard[data-state="ok"]').count() == 3 * 6
        Faults(cluster).kill_node(victim.node)
        on_victim = page.locator(f'td.shard[data-node="{victim_id}"]')
        states: set[str | None] = set()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            await page.reload()
            states = {await cell.get_attribute("data-state") for cell in await on_victim.all()}
            if states == {"down"}:
                break
            await page.wait_for_timeout(500)
        assert states == {"down"}
        # Down in words as well as in colour, and its segments a spare node short.
        texts = [await cell.inner_text() for cell in await on_victim.all()]
        assert all(re.search(r"\bdown\b", text, re.IGNORECASE) for text in texts), texts
        assert "1 of 2 nodes" in await page.locator("#shard-grid").inner_text()
        assert watched.console_errors == []
        assert watched.outside_requests == []
