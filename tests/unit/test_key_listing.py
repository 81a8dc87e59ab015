"""MetadataStore.list_keys on both backends: S3's listing semantics against a plain model of
them, the examples S3 clients depend on, and the cost (one indexed read per common prefix, the
committed-key index in every plan)."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import pytest
from conftest import PG_ADMIN, md5_hex

from diststorage.core.ids import new_id
from diststorage.core.policy import INLINE_POLICY
from diststorage.meta import KeyPage, MetadataStore, NewObject, PlannedChunk
from diststorage.meta.listing import ListingScope, prefix_upper_bound
from diststorage.testing.direct_db import DirectDatabase, recorded_object_reads

NAMESPACE = "default"
NAMESPACE_ID = 1  # the default namespace, created by the first migration


def _new(key: str) -> NewObject:
    return NewObject(new_id(), NAMESPACE, key, "text/plain", INLINE_POLICY, 4096, 8, new_id())


async def _put(store: MetadataStore, key: str) -> None:
    body = key.encode()
    await store.commit_inline(_new(key), body, md5_hex(body), replace=True)


def _entries(page: KeyPage) -> list[str]:
    """The page's entries in their merged byte order, common prefixes marked with ``>``."""
    merged = [o.key for o in page.objects] + [f">{p}" for p in page.common_prefixes]
    return sorted(merged, key=lambda e: e.removeprefix(">").encode())


# -- the model -----------------------------------------------------------------------------


def model_listing(keys: Sequence[str], prefix: str, delimiter: str, start_after: str) -> list[str]:
    """Every entry S3 lists after ``start_after``, the slow and obvious way: each key after it
    under the prefix, rolled into its common prefix; a common prefix equal to ``start_after``
    (where the page before ended) is not listed again."""
    entries: list[str] = []
    for key in sorted(keys, key=str.encode):
        if not key.startswith(prefix) or key.encode() <= start_after.encode():
            continue
        at = key.find(delimiter, len(prefix)) if delimiter else -1
        if at < 0:
            entries.append(key)
            continue
        folder = key[: at + len(delimiter)]
        if folder != start_after and f">{folder}" not in entries:
            entries.append(f">{folder}")
    return entries


KEYS = (
    "a",
    "a/",
    "a/b",
    "a/b/c",
    "a/c",
    "a//x",
    "a::b",
    "a::b::c",
    "a::",
    "ab",
    "a\xff",
    "a\xff/x",
    "a+b",
    "a b/c",
    "a/../b",
    "b",
    "b/x",
    "b/y/z",
    "100%",
    "dir/",
    "//x",
    "é/1",
    "é/2",
    "한글/x",
    "z\x7f/q",
    "z\uffff",
    "z\U0010ffff",
    "z\U0010ffff/x",
)


async def _put_all(store: MetadataStore, keys: Sequence[str]) -> None:
    for key in keys:
        await _put(store, key)


async def _walk(
    store: MetadataStore, prefix: str, delimiter: str, start_after: str, limit: int
) -> list[list[str]]:
    """Every page from ``start_after`` on, each continued from the one before."""
    pages = []
    while True:
        page = await store.list_keys(NAMESPACE, prefix, delimiter, start_after, limit)
        pages.append(_entries(page))
        assert len(pages[-1]) <= limit
        if not page.truncated:
            assert page.next_start_after is None
            return pages
        assert page.next_start_after == pages[-1][-1].removeprefix(">")
        start_after = page.next_start_after
        assert len(pages) <= len(KEYS) + 1, "the listing does not advance"


async def test_every_combination_matches_the_model(store: MetadataStore) -> None:
    await _put_all(store, KEYS)
    prefixes = ("", "a", "a/", "z\U0010ffff")
    delimiters = ("", "/", "::", "b")
    starts = ("", "a/b", "a/", "b", "zz")
    for prefix, delimiter, start in itertools.product(prefixes, delimiters, starts):
        expected = model_listing(KEYS, prefix, delimiter, start)
        for limit in (1, 2, 1000):
            pages = await _walk(store, prefix, delimiter, start, limit)
            got = [entry for page in pages for entry in page]
            assert got == expected, (prefix, delimiter, start, limit)
            assert all(len(p) == limit for p in pages[:-1]), (prefix, delimiter, start, limit)


def test_upper_bounds_and_first_keys() -> None:
    assert prefix_upper_bound(b"a/") == b"a0"
    assert prefix_upper_bound(b"a\xff\xff") == b"b"
    assert prefix_upper_bound(b"\xff\xff") is None and prefix_upper_bound(b"") is None
    scope = ListingScope(b"p/", b"/")
    assert scope.first_key(b"") == scope.first_key(b"a") == b"p/"  # from the prefix on
    assert scope.first_key(b"p/") == b"p/\x00"  # after the key "p/" itself
    assert scope.first_key(b"p/x") == b"p/x\x00"
    assert scope.first_key(b"p/x/") == b"p/x0"  # a common prefix: past every key under it
    assert scope.first_key(b"p/x/y") == b"p/x/y\x00"  # inside one: the prefix is listed
    assert scope.first_key(b"q") is None  # past the prefix: nothing can follow
    assert ListingScope(b"", b"::").first_key(b"a::") == b"a:;"
    assert ListingScope(b"", b"").first_key(b"a/") == b"a/\x00"  # no delimiter, no folders


# -- the examples ----------------------------------------------------------------------------


async def test_common_prefixes_count_toward_the_limit_and_a_page_can_end_on_one(
    store: MetadataStore,
) -> None:
    await _put_all(store, ["asdf", "boo/bar", "boo/baz/xyzzy", "cquux/thud", "cquux/bla"])
    first = await store.list_keys(NAMESPACE, "", "/", "", 2)
    assert _entries(first) == ["asdf", ">boo/"]
    assert first.truncated and first.next_start_after == "boo/"
    # Continued from the common prefix, the next page skips it whole.
    second = await store.list_keys(NAMESPACE, "", "/", "boo/", 2)
    assert _entries(second) == [">cquux/"]
    assert not second.truncated and second.next_start_after is None


async def test_a_start_inside_a_common_prefix_lists_that_prefix(store: MetadataStore) -> None:
    await _put_all(store, ["photos/2024/a.jpg", "photos/2024/b.jpg", "photos/2025/c.jpg"])
    page = await store.list_keys(NAMESPACE, "photos/", "/", "photos/2024/a.jpg", 1000)
    assert page.common_prefixes == ("photos/2024/", "photos/2025/")
    page = await store.list_keys(NAMESPACE, "photos/", "/", "photos/2024/b.jpg", 1000)
    assert page.common_prefixes == ("photos/2025/",)
    page = await store.list_keys(NAMESPACE, "", "", "photos/2024/a.jpg", 1000)
    assert [o.key for o in page.objects] == ["photos/2024/b.jpg", "photos/2025/c.jpg"]


async def test_max_keys_zero_and_one(store: MetadataStore) -> None:
    await _put_all(store, ["x/1", "y"])
    empty = await store.list_keys(NAMESPACE, "", "/", "", 0)
    assert empty == KeyPage((), (), truncated=False, next_start_after=None)
    one = await store.list_keys(NAMESPACE, "", "/", "", 1)
    assert _entries(one) == [">x/"] and one.truncated and one.next_start_after == "x/"
    last = await store.list_keys(NAMESPACE, "", "/", "x/", 1)
    assert _entries(last) == ["y"] and not last.truncated


async def test_multi_character_delimiters_and_none(store: MetadataStore) -> None:
    await _put_all(store, ["a--b--c", "a--d", "a-e", "a--", "b"])
    page = await store.list_keys(NAMESPACE, "", "--", "", 1000)
    assert _entries(page) == [">a--", "a-e", "b"]
    page = await store.list_keys(NAMESPACE, "a--", "--", "", 1000)
    assert _entries(page) == ["a--", ">a--b--", "a--d"]
    page = await store.list_keys(NAMESPACE, "", "", "", 1000)
    assert _entries(page) == ["a--", "a--b--c", "a--d", "a-e", "b"]
    # A delimiter that no key holds lists every key as itself.
    page = await store.list_keys(NAMESPACE, "", "|", "", 1000)
    assert _entries(page) == ["a--", "a--b--c", "a--d", "a-e", "b"]


async def test_keys_come_out_in_byte_order_with_their_common_prefixes(
    store: MetadataStore,
) -> None:
    keys = ["z\U0010ffff/x", "z\uffff", "é/1", "e/1", "E", "한글/x", "~", "\x7f", "z\U0010ffff"]
    await _put_all(store, keys)
    page = await store.list_keys(NAMESPACE, "", "/", "", 1000)
    assert _entries(page) == [
        "E",
        ">e/",
        "z\uffff",
        "z\U0010ffff",
        ">z\U0010ffff/",
        "~",
        "\x7f",
        ">é/",
        ">한글/",
    ]
    # A prefix whose last byte is the largest any UTF-8 text holds.
    page = await store.list_keys(NAMESPACE, "z\U0010ffff", "/", "", 1000)
    assert _entries(page) == ["z\U0010ffff", ">z\U0010ffff/"]


async def test_pending_and_deleted_objects_are_not_listed(store: MetadataStore) -> None:
    await _put_all(store, ["kept", "gone/1", "gone2"])
    await store.begin_upload(_new("pending/1"), [PlannedChunk(new_id(), "n1", 0, 0)])
    await store.begin_upload(_new("kept2"), [])
    await store.delete_object(NAMESPACE, "gone/1")
    await store.delete_object(NAMESPACE, "gone2")
    page = await store.list_keys(NAMESPACE, "", "/", "", 1000)
    assert _entries(page) == ["kept"]


async def test_listed_objects_carry_their_info(store: MetadataStore) -> None:
    new = _new("dir/file")
    outcome = await store.commit_inline(new, b"body", md5_hex(b"body"), replace=False)
    page = await store.list_keys(NAMESPACE, "dir/", "/", "", 10)
    assert page.objects == (outcome.info,)


# -- the cost --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeededStore:
    """A store whose database the test also reaches directly, to seed it in bulk and to ask
    for query plans."""

    store: MetadataStore
    direct: DirectDatabase


@pytest.fixture(params=["sqlite", "postgresql"])
async def seeded(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SeededStore]:
    if request.param == "sqlite":
        path = tmp_path / "m.db"
        opened = await MetadataStore.open(f"sqlite:///{path}", 30)
        yield SeededStore(opened, DirectDatabase(sqlite_path=path))
        await opened.close()
        return
    name = f"diststorage_test_{new_id()[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = f"postgresql://postgres@127.0.0.1:5432/{name}"
        opened = await MetadataStore.open(url, 30)
        yield SeededStore(opened, DirectDatabase(pg_url=url))
        await opened.close()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


BIG_FOLDER_KEYS = 200_000


async def test_a_huge_common_prefix_costs_one_read(seeded: SeededStore) -> None:
    """200,000 keys under one folder, between runs of plain keys: every page costs a handful
    of reads (a scan of the folder would be 200 reads of a page each at the least)."""
    before = [f"a{i:02d}" for i in range(30)]
    folder = [f"big/{i:06d}" for i in range(BIG_FOLDER_KEYS)]
    after = [f"c{i:04d}" for i in range(1500)] + ["d/1", "d/2", "e"]
    await seeded.direct.insert_committed(before + folder + after)
    store = seeded.store
    await store.list_keys(NAMESPACE, "", "/", "", 1)  # the namespace id, cached from now on
    pages: list[KeyPage] = []
    reads: list[int] = []
    start = ""
    while True:
        with recorded_object_reads(store) as seen:
            page = await store.list_keys(NAMESPACE, "", "/", start, 1000)
        pages.append(page)
        reads.append(len(seen))
        if not page.truncated:
            break
        assert page.next_start_after is not None
        start = page.next_start_after
    assert [len(p.objects) + len(p.common_prefixes) for p in pages] == [1000, 533]
    assert pages[0].common_prefixes == ("big/",)
    assert pages[1].common_prefixes == ("d/",)
    assert [o.key for o in pages[1].objects][-2:] == ["c1499", "e"]
    assert max(reads) <= 7, reads
    # The same folder as the start of a continuation: one read jumps past it.
    with recorded_object_reads(store) as seen:
        page = await store.list_keys(NAMESPACE, "", "/", "big/", 1)
    assert [o.key for o in page.objects] == ["c0000"] and len(seen) == 1
    # A page of nothing but folders: one read each.
    with recorded_object_reads(store) as seen:
        page = await store.list_keys(NAMESPACE, "b", "/", "", 1000)
    assert page.common_prefixes == ("big/",) and len(seen) == 2


async def test_every_listing_read_uses_the_committed_key_index(seeded: SeededStore) -> None:
    keys = [f"k{i // 100:03d}/{i:05d}" for i in range(20_000)] + ["m", "n"]
    await seeded.direct.insert_committed(keys)
    store = seeded.store
    with recorded_object_reads(store) as seen:
        bounded = await store.list_keys(NAMESPACE, "k01", "/", "", 1000)
        unbounded = await store.list_keys(NAMESPACE, "", "", "k2", 5)
    assert len(bounded.common_prefixes) == 10 and [o.key for o in unbounded.objects] == [
        "m",
        "n",
    ]
    assert len({statement for statement, _ in seen}) == 2, seen
    for plan in await seeded.direct.plans(seen):
        assert "uq_objects_committed_key" in plan, plan
        # Rows come in index order: no sort, no scan of the table.
        assert "SORT" not in plan.upper() and "TEMP B-TREE" not in plan.upper(), plan
        assert "SCAN objects" not in plan and "Seq Scan" not in plan, plan
