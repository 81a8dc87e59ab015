"""The multipart store on SQLite and PostgreSQL: parts are hidden part rows, a part uploaded
again replaces its predecessor (whose chunks become garbage in the same transaction),
Complete checks order, ETags and sizes and makes the parts the object's without copying,
a retried Complete gets the same answer, Abort drops every part, and a multipart object
takes its parts with it when it is deleted or replaced."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from datetime import timedelta

import pytest

from diststorage.core.clock import SYSTEM_CLOCK, utc_now
from diststorage.core.errors import (
    AlreadyExists,
    EntityTooSmall,
    InvalidPart,
    InvalidPartOrder,
    InvalidRequest,
    NoSuchUpload,
    PreconditionFailed,
)
from diststorage.core.ids import new_id
from diststorage.meta import (
    DEFAULT_NAMESPACE,
    ChunkRef,
    ChunkState,
    CompletedUpload,
    ListedPart,
    MetadataStore,
    NewObject,
    NewUpload,
    ObjectAttributes,
    PlannedChunk,
    StoredChecksum,
    StoredChunk,
    part_key,
)

NS = DEFAULT_NAMESPACE
MIN_PART = 100


def no_checksum(algorithm: str, kind: str, parts: Sequence[tuple[str, int]]) -> str:
    return f"{algorithm}:{kind}:" + ",".join(f"{value}/{size}" for value, size in parts)


async def create(
    store: MetadataStore, key: str = "k", algorithm: str | None = None, kind: str | None = None
) -> str:
    upload_id = new_id()
    attrs = ObjectAttributes(user_meta=(("color", "blue"),))
    await store.multipart.create_upload(
        NewUpload(upload_id, NS, key, "video/mp4", attrs, algorithm, kind)
    )
    return upload_id


async def begin_part(store: MetadataStore, upload_id: str, number: int) -> tuple[str, ChunkRef]:
    """A pending part row with one planned chunk, as the writer leaves it before its commit."""
    new = NewObject(
        new_id(),
        NS,
        part_key(upload_id, number),
        "application/octet-stream",
        "ec:1+1",
        4096,
        8,
        new_id(),
    )
    planned = PlannedChunk(new_id(), new_id(), 0, 0)
    await store.begin_upload(new, [planned])
    return new.object_id, ChunkRef(planned.chunk_id, planned.node_id)


async def put_part(
    store: MetadataStore,
    upload_id: str,
    number: int,
    size: int,
    checksum: StoredChecksum | None = None,
) -> tuple[str, ChunkRef]:
    """A part committed with one chunk; returns its MD5 and its chunk."""
    object_id, ref = await begin_part(store, upload_id, number)
    md5 = hashlib.md5(f"{upload_id}/{number}/{size}".encode()).hexdigest()
    stored = StoredChunk(ref.chunk_id, ref.node_id, 0, 0, size, (1,))
    await store.multipart.commit_part(
        object_id, upload_id, number, size, md5, [stored], checksum=checksum
    )
    return md5, ref


async def complete(
    store: MetadataStore,
    upload_id: str,
    listed: Sequence[ListedPart],
    key: str = "k",
    replace: bool = True,
    if_match: str | None = None,
) -> CompletedUpload:
    return await store.multipart.complete(
        upload_id, NS, key, listed, no_checksum, MIN_PART, replace, if_match
    )


async def garbage(store: MetadataStore) -> set[ChunkRef]:
    return set(await store.list_garbage(1000))


async def test_parts_1_3_7_complete_into_one_object_made_of_them(store: MetadataStore) -> None:
    upload_id = await create(store)
    sizes = {1: 150, 3: 120, 7: 30}
    parts = {n: await put_part(store, upload_id, n, size) for n, size in sizes.items()}
    page = await store.multipart.list_parts(upload_id, NS, "k")
    assert [(p.part_number, p.size_bytes, p.etag) for p in page.parts] == [
        (n, sizes[n], parts[n][0]) for n in (1, 3, 7)
    ]
    listed = [ListedPart(n, f'"{parts[n][0]}"') for n in (1, 3, 7)]
    done = await complete(store, upload_id, listed)
    expected = hashlib.md5(b"".join(bytes.fromhex(parts[n][0]) for n in (1, 3, 7))).hexdigest()
    info = done.info
    assert (info.etag, info.size_bytes, info.part_count) == (f"{expected}-3", 300, 3)
    assert (info.content_type, info.attrs.user_meta) == ("video/mp4", (("color", "blue"),))
    assert done.replaced is None and done.dropped_parts == ()
    layout = await store.get_layout(NS, "k")
    assert layout.chunks == () and layout.info == await store.get_info(NS, "k")
    assert [(p.offset_bytes, p.end_bytes) for p in layout.parts] == [
        (0, 150),
        (150, 270),
        (270, 300),
    ]
    assert [p.layout.chunks[0].chunk_id for p in layout.parts] == [
        parts[n][1].chunk_id for n in (1, 3, 7)
    ]
    # No bytes moved, none became garbage; part rows are never listed.
    assert await garbage(store) == set()
    assert [o.key for o in (await store.list_objects(NS)).objects] == ["k"]
    with pytest.raises(NoSuchUpload):
        await store.multipart.list_parts(upload_id, NS, "k")


async def test_part_rows_are_invisible_by_key_and_in_listings(store: MetadataStore) -> None:
    upload_id = await create(store)
    await put_part(store, upload_id, 1, 10)
    assert not await store.key_exists(NS, part_key(upload_id, 1))
    assert (await store.list_objects(NS)).objects == ()
    assert await store.multipart.has_open_uploads(NS)


async def test_a_part_uploaded_again_replaces_the_old_one_whose_chunks_are_garbage(
    store: MetadataStore,
) -> None:
    upload_id = await create(store)
    _, first = await put_part(store, upload_id, 1, 10)
    md5, _ = await put_part(store, upload_id, 1, 20)
    assert await garbage(store) == {first}
    (part,) = (await store.multipart.list_parts(upload_id, NS, "k")).parts
    assert (part.size_bytes, part.md5_hex) == (20, md5)
    done = await complete(store, upload_id, [ListedPart(1, md5)])
    assert done.info.size_bytes == 20


async def test_complete_checks_order_etags_and_sizes_and_leaves_the_upload_open(
    store: MetadataStore,
) -> None:
    upload_id = await create(store)
    md5_1, _ = await put_part(store, upload_id, 1, MIN_PART - 1)
    md5_2, _ = await put_part(store, upload_id, 2, 10)
    cases: list[tuple[list[ListedPart], type[Exception]]] = [
        ([], InvalidRequest),
        ([ListedPart(2, md5_2), ListedPart(1, md5_1)], InvalidPartOrder),
        ([ListedPart(1, md5_1), ListedPart(1, md5_1)], InvalidPartOrder),
        ([ListedPart(1, md5_2)], InvalidPart),
        ([ListedPart(1, f'"{md5_2}"')], InvalidPart),
        ([ListedPart(4, md5_1)], InvalidPart),
        ([ListedPart(1, md5_1), ListedPart(2, md5_2)], EntityTooSmall),
    ]
    for listed, error in cases:
        with pytest.raises(error):
            await complete(store, upload_id, listed)
    # The last part may be small; quoted and unquoted ETags both match.
    done = await complete(store, upload_id, [ListedPart(1, f'"{md5_1}"')])
    assert done.info.size_bytes == MIN_PART - 1


async def test_unlisted_parts_are_garbage_once_completed(store: MetadataStore) -> None:
    upload_id = await create(store)
    md5_1, _ = await put_part(store, upload_id, 1, MIN_PART)
    _, unlisted = await put_part(store, upload_id, 2, MIN_PART)
    md5_3, _ = await put_part(store, upload_id, 3, 5)
    done = await complete(store, upload_id, [ListedPart(1, md5_1), ListedPart(3, md5_3)])
    assert done.dropped_parts == (unlisted,)
    assert await garbage(store) == {unlisted}
    assert (await store.get_layout(NS, "k")).info.part_count == 2


async def test_a_retried_complete_gets_the_same_answer(store: MetadataStore) -> None:
    upload_id = await create(store)
    md5, _ = await put_part(store, upload_id, 1, 10)
    first = await complete(store, upload_id, [ListedPart(1, md5)])
    again = await complete(store, upload_id, [ListedPart(1, md5)], replace=False)
    assert again.info == first.info and again.replaced is None
    # Even once the object is gone, the ETag is remembered.
    await store.delete_object(NS, "k")
    gone = await complete(store, upload_id, [ListedPart(1, md5)])
    assert (gone.info.etag, gone.info.size_bytes) == (first.info.etag, 10)
    with pytest.raises(NoSuchUpload):
        await store.multipart.abort(upload_id, NS, "k")


async def test_complete_takes_the_key_under_the_same_conditions_as_a_put(
    store: MetadataStore,
) -> None:
    upload_id = await create(store)
    md5, _ = await put_part(store, upload_id, 1, 10)
    with pytest.raises(PreconditionFailed):
        await complete(store, upload_id, [ListedPart(1, md5)], if_match="*")
    first = await complete(store, upload_id, [ListedPart(1, md5)], replace=False)
    other = await create(store)
    md5_other, _ = await put_part(store, other, 1, 10)
    with pytest.raises(AlreadyExists):
        await complete(store, other, [ListedPart(1, md5_other)], replace=False)
    with pytest.raises(PreconditionFailed):
        await complete(store, other, [ListedPart(1, md5_other)], if_match="0" * 32)
    replaced = await complete(store, other, [ListedPart(1, md5_other)], if_match=first.info.etag)
    assert replaced.replaced is not None
    assert replaced.replaced.object_id == first.info.object_id


async def test_of_two_racing_creates_by_complete_one_wins(store: MetadataStore) -> None:
    uploads = [await create(store, "race") for _ in range(2)]
    tags = [(await put_part(store, u, 1, 10))[0] for u in uploads]
    outcomes = await asyncio.gather(
        *(
            complete(store, u, [ListedPart(1, tag)], key="race", replace=False)
            for u, tag in zip(uploads, tags, strict=True)
        ),
        return_exceptions=True,
    )
    assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyExists", "CompletedUpload"]


async def test_deleting_or_replacing_a_multipart_object_drops_its_parts(
    store: MetadataStore,
) -> None:
    upload_id = await create(store)
    tags = [await put_part(store, upload_id, n, MIN_PART) for n in (1, 2)]
    await complete(
        store, upload_id, [ListedPart(n, t[0]) for n, t in zip((1, 2), tags, strict=True)]
    )
    deleted = await store.delete_object(NS, "k")
    assert set(deleted.chunks) == {t[1] for t in tags} == await garbage(store)

    again = await create(store)
    tags = [await put_part(store, again, n, MIN_PART) for n in (1, 2)]
    await complete(store, again, [ListedPart(n, t[0]) for n, t in zip((1, 2), tags, strict=True)])
    new = NewObject(new_id(), NS, "k", "text/plain", "inline", 4096, 8, new_id())
    outcome = await store.commit_inline(new, b"plain", "a" * 32, replace=True)
    assert outcome.replaced is not None
    assert set(outcome.replaced.chunks) == {t[1] for t in tags}
    layout = await store.get_layout(NS, "k")
    assert (layout.info.part_count, layout.parts, layout.inline_body) == (0, (), b"plain")


async def test_abort_drops_every_part_and_is_repeatable(store: MetadataStore) -> None:
    upload_id = await create(store)
    refs = {(await put_part(store, upload_id, n, 10))[1] for n in (1, 2)}
    assert set(await store.multipart.abort(upload_id, NS, "k")) == refs
    assert await garbage(store) == refs
    assert await store.multipart.abort(upload_id, NS, "k") == []
    assert not await store.multipart.has_open_uploads(NS)
    with pytest.raises(NoSuchUpload):
        await complete(store, upload_id, [ListedPart(1, "x")])
    with pytest.raises(NoSuchUpload):
        await store.multipart.abort(new_id(), NS, "k")


async def test_a_part_committed_after_abort_fails_and_stays_pending(
    store: MetadataStore,
) -> None:
    upload_id = await create(store)
    object_id, ref = await begin_part(store, upload_id, 1)
    await store.multipart.abort(upload_id, NS, "k")
    stored = StoredChunk(ref.chunk_id, ref.node_id, 0, 0, 5, (1,))
    with pytest.raises(NoSuchUpload):
        await store.multipart.commit_part(object_id, upload_id, 1, 5, "a" * 32, [stored])
    # The writer's rollback then deletes the chunk and forgets the pending row.
    assert await store.upload_state(object_id) == "pending"
    await store.abort_upload(object_id, [])
    assert await store.upload_state(object_id) is None


async def test_an_upload_belongs_to_its_key(store: MetadataStore) -> None:
    upload_id = await create(store, "mine")
    with pytest.raises(NoSuchUpload):
        await store.multipart.open_upload(upload_id, NS, "theirs")
    with pytest.raises(NoSuchUpload):
        await store.multipart.list_parts(upload_id, NS, "theirs")
    assert (await store.multipart.open_upload(upload_id, NS, "mine")).key == "mine"


async def test_complete_keeps_the_checksum_its_combiner_makes(store: MetadataStore) -> None:
    upload_id = await create(store, algorithm="CRC32", kind="COMPOSITE")
    crc = [StoredChecksum("CRC32", "FULL_OBJECT", v) for v in ("AAAAAQ==", "AAAAAg==")]
    md5_1, _ = await put_part(store, upload_id, 1, MIN_PART, crc[0])
    md5_2, _ = await put_part(store, upload_id, 2, 7, crc[1])
    with pytest.raises(InvalidPart):  # a listed checksum must be the part's
        await complete(store, upload_id, [ListedPart(1, md5_1, crc[1])])
    done = await complete(
        store, upload_id, [ListedPart(1, md5_1, crc[0]), ListedPart(2, md5_2, crc[1])]
    )
    assert done.info.checksum == StoredChecksum(
        "CRC32", "COMPOSITE", f"CRC32:COMPOSITE:AAAAAQ==/{MIN_PART},AAAAAg==/7"
    )


async def test_an_upload_with_an_algorithm_needs_it_on_every_part(store: MetadataStore) -> None:
    upload_id = await create(store, algorithm="SHA256", kind="COMPOSITE")
    md5, _ = await put_part(store, upload_id, 1, 10)
    with pytest.raises(InvalidPart):
        await complete(store, upload_id, [ListedPart(1, md5)])


async def test_an_upload_without_an_algorithm_completes_with_part_checksums_listed(
    store: MetadataStore,
) -> None:
    upload_id = await create(store)
    crc = StoredChecksum("CRC32", "FULL_OBJECT", "AAAAAQ==")
    md5, _ = await put_part(store, upload_id, 1, 10, crc)
    done = await complete(store, upload_id, [ListedPart(1, md5, crc)])
    assert done.info.checksum is None


async def test_uploads_are_listed_in_pages_with_common_prefixes(store: MetadataStore) -> None:
    keys = ["a/1", "a/2", "b", "b", "c/x/1", "d"]
    ids = [await create(store, key) for key in keys]
    finished = await create(store, "b0")
    await store.multipart.abort(finished, NS, "b0")

    flat = await store.multipart.list_uploads(NS, limit=4)
    assert [u.key for u in flat.uploads] == ["a/1", "a/2", "b", "b"] and flat.truncated
    assert flat.uploads[2].upload_id < flat.uploads[3].upload_id
    rest = await store.multipart.list_uploads(
        NS,
        key_marker=flat.next_key_marker or "",
        upload_id_marker=flat.next_upload_id_marker or "",
    )
    assert [u.key for u in rest.uploads] == ["c/x/1", "d"] and not rest.truncated

    by_prefix = await store.multipart.list_uploads(NS, delimiter="/", limit=2)
    assert (by_prefix.common_prefixes, [u.key for u in by_prefix.uploads]) == (("a/",), ["b"])
    assert (by_prefix.truncated, by_prefix.next_key_marker) == (True, "b")
    second = await store.multipart.list_uploads(
        NS, delimiter="/", limit=2, key_marker="b", upload_id_marker=by_prefix.uploads[0].upload_id
    )
    assert ([u.key for u in second.uploads], second.common_prefixes) == (["b"], ("c/",))
    assert (second.truncated, second.next_key_marker, second.next_upload_id_marker) == (
        True,
        "c/",
        None,
    )
    last = await store.multipart.list_uploads(NS, delimiter="/", key_marker="c/")
    assert ([u.key for u in last.uploads], last.truncated) == (["d"], False)
    under = await store.multipart.list_uploads(NS, prefix="c/", delimiter="/")
    assert under.common_prefixes == ("c/x/",) and under.uploads == ()
    assert {u.upload_id for u in flat.uploads + rest.uploads} == set(ids)


async def test_idle_uploads_expire_and_finished_ones_are_forgotten(store: MetadataStore) -> None:
    idle = await create(store, "idle")
    _, ref = await put_part(store, idle, 1, 10)
    done = await create(store, "done")
    md5, _ = await put_part(store, done, 1, 10)
    await complete(store, done, [ListedPart(1, md5)], key="done")
    later = utc_now(SYSTEM_CLOCK) + timedelta(seconds=5)
    expired = await store.multipart.expire_idle(later, 10)
    assert [(e.upload_id, e.chunks) for e in expired] == [(idle, (ref,))]
    assert await store.multipart.expire_idle(later, 10) == []
    assert await store.multipart.purge_finished(later, 10) == 2
    with pytest.raises(NoSuchUpload):
        await complete(store, done, [ListedPart(1, md5)], key="done")
    assert (await store.get_info(NS, "done")).part_count == 1


async def test_repair_and_the_audit_look_after_part_chunks(store: MetadataStore) -> None:
    upload_id = await create(store)
    md5_1, damaged = await put_part(store, upload_id, 1, MIN_PART)
    md5_2, lost = await put_part(store, upload_id, 2, 10)
    maintenance = store.maintenance
    assert await maintenance.chunks_placed_on(damaged.node_id, "", None, 10) == [damaged.chunk_id]
    assert await maintenance.mark_chunks([damaged.chunk_id], ChunkState.DAMAGED) == 1
    (task,) = await maintenance.due_repair_tasks(10)
    segment = await maintenance.segment_layout(task.object_id, task.segment_index)
    assert segment is not None and segment.chunks[0].state == ChunkState.DAMAGED
    assert segment.info.key == part_key(upload_id, 1)
    # Still so once the parts belong to a completed object.
    await complete(store, upload_id, [ListedPart(1, md5_1), ListedPart(2, md5_2)])
    assert await maintenance.movable_chunks(lost.node_id, 10) == [(lost.chunk_id, 10)]
    assert await maintenance.queue_segments_on_nodes([lost.node_id]) == 1
    assert (await maintenance.repair_backlog([lost.node_id])).segments_queued == 2


async def test_a_part_cut_off_by_a_crash_falls_to_the_stale_upload_sweep(
    store: MetadataStore,
) -> None:
    upload_id = await create(store)
    md5, _ = await put_part(store, upload_id, 1, 10)
    object_id, ref = await begin_part(store, upload_id, 2)  # its gateway dies here
    later = utc_now(SYSTEM_CLOCK) + timedelta(seconds=5)
    stale = await store.maintenance.stale_uploads(later, 10)
    assert [s.object_id for s in stale] == [object_id]
    assert await store.maintenance.collect_upload(object_id, later) == [ref]
    # The upload itself goes on with the parts it has.
    done = await complete(store, upload_id, [ListedPart(1, md5)])
    assert done.info.size_bytes == 10
