"""Multipart uploads in the metadata database: create, store parts, complete, abort, list,
expire. Same contract as the metadata store: one operation per method, under a deadline,
foreign errors translated (see base).

Each operation on an upload locks its row first (``FOR UPDATE`` on PostgreSQL; SQLite has
one writer), so a part's commit, a Complete and an Abort of one upload never interleave: a
part committed after the upload ended fails, and the writer's rollback deletes its chunks. A
part is an ``objects`` row (``ObjectState.PART``) written by the ordinary write pipeline,
which calls ``commit_part`` where a plain upload calls ``commit_upload``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update
from sqlalchemy.orm import Session

from diststorage.core.errors import NoSuchUpload, ObjectNotFound
from diststorage.core.ids import new_id
from diststorage.meta.base import StoreBase, object_info, utc
from diststorage.meta.commits import (
    commit_key,
    insert_inline,
    mark_stored,
    new_object_row,
    pending_upload,
    record_written,
)
from diststorage.meta.completion import (
    StoredPart,
    check_expected,
    chosen_parts,
    multipart_md5,
    object_checksum,
)
from diststorage.meta.keys import Claim, drop_rows, take_key
from diststorage.meta.models import OBJECTS, Namespace
from diststorage.meta.multipart_models import MULTIPART_UPLOADS, OBJECT_PARTS, UPLOAD_PARTS
from diststorage.meta.multipart_records import (
    ChecksumCombiner,
    CompletedUpload,
    ExpiredUpload,
    ListedPart,
    NewUpload,
    PartRecord,
    PartsPage,
    UploadInfo,
    UploadsPage,
)
from diststorage.meta.records import (
    ChunkRef,
    CommitOutcome,
    DegradedSegment,
    DiscardedObject,
    NewObject,
    ObjectAttributes,
    ObjectInfo,
    StoredChecksum,
    StoredChunk,
)
from diststorage.meta.states import ObjectState, UploadState
from diststorage.meta.upload_listing import UploadListing

MAX_PARTS_PAGE = 1000
MAX_UPLOADS_PAGE = 1000

_UPLOADS = MULTIPART_UPLOADS.c
_PARTS = UPLOAD_PARTS.c


def _namespace_id(session: Session, name: str) -> int:
    found = session.scalar(select(Namespace.id).where(Namespace.name == name))
    if found is None:
        raise ObjectNotFound(f"namespace {name!r} does not exist")
    return found


def _locked_upload(
    session: Session, upload_id: str, namespace_id: int, lock: bool = True
) -> Row[Any]:
    """The upload's row, with ``lock`` locked until the transaction ends; NoSuchUpload when
    there is none in that namespace."""
    query = select(MULTIPART_UPLOADS).where(_UPLOADS.upload_id == upload_id)
    row = session.execute(query.with_for_update() if lock else query).one_or_none()
    if row is None or row.namespace_id != namespace_id:
        raise NoSuchUpload(f"no multipart upload {upload_id!r}")
    return row


def _upload_of_key(
    session: Session, upload_id: str, namespace: str, key: str, lock: bool = True
) -> Row[Any]:
    row = _locked_upload(session, upload_id, _namespace_id(session, namespace), lock)
    if row.key != key.encode():
        raise NoSuchUpload(f"multipart upload {upload_id!r} is not one of key {key!r}")
    return row


def _require_open(row: Row[Any]) -> None:
    if row.state != UploadState.OPEN:
        raise NoSuchUpload(f"multipart upload {row.upload_id!r} is {row.state}")


def _upload_info(row: Row[Any], namespace: str) -> UploadInfo:
    return UploadInfo(
        upload_id=row.upload_id,
        namespace=namespace,
        key=row.key.decode(),
        state=row.state,
        initiated_at=utc(row.initiated_at),
        last_activity_at=utc(row.last_activity_at),
        content_type=row.content_type,
        attrs=ObjectAttributes.from_json(row.attrs),
        checksum_algorithm=row.checksum_algo,
        checksum_type=row.checksum_type,
        initiator_key=row.initiator_key,
    )


def _checksum(algorithm: str | None, value: str | None) -> StoredChecksum | None:
    return (
        None
        if algorithm is None or value is None
        else StoredChecksum(algorithm, "FULL_OBJECT", value)
    )


def _touch(session: Session, upload_id: str, now: datetime, **values: Any) -> None:
    session.execute(
        update(MULTIPART_UPLOADS)
        .where(_UPLOADS.upload_id == upload_id)
        .values(last_activity_at=now, **values)
    )


def _swap_part(
    session: Session, upload_id: str, part_number: int, info: ObjectInfo, now: datetime
) -> DiscardedObject | None:
    """Makes the part row ``info`` the upload's part ``part_number``; the row that held that
    number before, if any, is dropped and its chunks queued as garbage (and returned)."""
    where = (_PARTS.upload_id == upload_id, _PARTS.part_number == part_number)
    previous = session.scalar(select(_PARTS.part_object_id).where(*where))
    replaced = None
    if previous is not None:
        session.execute(delete(UPLOAD_PARTS).where(*where))
        replaced = DiscardedObject(previous, tuple(drop_rows(session, [previous], now)))
    checksum = info.checksum
    session.execute(
        insert(UPLOAD_PARTS).values(
            upload_id=upload_id,
            part_number=part_number,
            part_object_id=info.object_id,
            size_bytes=info.size_bytes,
            md5_hex=info.md5_hex,
            checksum_algo=None if checksum is None else checksum.algorithm,
            checksum_value=None if checksum is None else checksum.value,
            uploaded_at=now,
        )
    )
    _touch(session, upload_id, now)
    return replaced


def _drop_parts(
    session: Session, upload_id: str, now: datetime, keep: frozenset[str] = frozenset()
) -> list[ChunkRef]:
    """Ends the upload's hold on its part rows and drops those not in ``keep`` (the ones a
    completed object now owns); returns the dropped rows' chunks, queued as garbage."""
    held = session.scalars(select(_PARTS.part_object_id).where(_PARTS.upload_id == upload_id))
    ids = [object_id for object_id in held if object_id not in keep]
    session.execute(delete(UPLOAD_PARTS).where(_PARTS.upload_id == upload_id))
    return drop_rows(session, ids, now)


def _abort_open(session: Session, row: Row[Any], now: datetime) -> list[ChunkRef]:
    refs = _drop_parts(session, row.upload_id, now)
    _touch(session, row.upload_id, now, state=UploadState.ABORTED)
    return refs


class MultipartStore(StoreBase):
    # -- uploads ---------------------------------------------------------------------------

    async def create_upload(self, new: NewUpload) -> UploadInfo:
        def operation(session: Session) -> UploadInfo:
            now = self._now()
            values = {
                "upload_id": new.upload_id,
                "namespace_id": _namespace_id(session, new.namespace),
                "key": new.key.encode(),
                "state": UploadState.OPEN,
                "initiated_at": now,
                "last_activity_at": now,
                "initiator_key": new.initiator_key,
                "content_type": new.content_type,
                "attrs": new.attrs.to_json(),
                "checksum_algo": new.checksum_algorithm,
                "checksum_type": new.checksum_type,
            }
            session.execute(insert(MULTIPART_UPLOADS).values(values))
            return UploadInfo(
                upload_id=new.upload_id,
                namespace=new.namespace,
                key=new.key,
                state=UploadState.OPEN,
                initiated_at=now,
                last_activity_at=now,
                content_type=new.content_type,
                attrs=new.attrs,
                checksum_algorithm=new.checksum_algorithm,
                checksum_type=new.checksum_type,
                initiator_key=new.initiator_key,
            )

        return await self._write(operation)

    async def open_upload(self, upload_id: str, namespace: str, key: str) -> UploadInfo:
        """The upload, if it is open and of that key; else NoSuchUpload."""

        def operation(session: Session) -> UploadInfo:
            row = _upload_of_key(session, upload_id, namespace, key, lock=False)
            _require_open(row)
            return _upload_info(row, namespace)

        return await self._read(operation)

    async def has_open_uploads(self, namespace: str) -> bool:
        """Whether the namespace has an upload still open (a bucket with one is not empty)."""

        def operation(session: Session) -> bool:
            found = session.scalar(
                select(_UPLOADS.upload_id)
                .where(
                    _UPLOADS.namespace_id == _namespace_id(session, namespace),
                    _UPLOADS.state == UploadState.OPEN,
                )
                .limit(1)
            )
            return found is not None

        return await self._read(operation)

    # -- parts -----------------------------------------------------------------------------

    async def commit_part(
        self,
        object_id: str,
        upload_id: str,
        part_number: int,
        size_bytes: int,
        md5_hex: str,
        chunks: Sequence[StoredChunk],
        dropped: Sequence[ChunkRef] = (),
        degraded: Sequence[DegradedSegment] = (),
        checksum: StoredChecksum | None = None,
    ) -> CommitOutcome:
        """Makes the pending upload ``object_id`` part ``part_number`` of the open upload, in
        one transaction: as ``commit_upload``, but the row becomes a ``part`` and takes the
        part number instead of a key. The part it replaces (the same number uploaded before)
        is dropped in the same transaction and returned as ``replaced``.

        Raises NoSuchUpload when the upload is no longer open (completed, aborted, expired):
        nothing changes, and the caller deletes the chunks it wrote.
        """

        def operation(session: Session) -> CommitOutcome:
            row = pending_upload(session, object_id)
            _require_open(_locked_upload(session, upload_id, row.namespace_id))
            now = self._now()
            record_written(session, object_id, chunks, dropped, degraded, now)
            mark_stored(session, object_id, ObjectState.PART, size_bytes, md5_hex, now, checksum)
            info = dataclasses.replace(
                object_info(row),
                size_bytes=size_bytes,
                md5_hex=md5_hex,
                created_at=now,
                checksum=checksum,
            )
            return CommitOutcome(info, _swap_part(session, upload_id, part_number, info, now))

        return await self._write(operation)

    async def commit_inline_part(
        self,
        new: NewObject,
        body: bytes,
        md5_hex: str,
        upload_id: str,
        part_number: int,
        checksum: StoredChecksum | None = None,
    ) -> CommitOutcome:
        """A small part kept inline (see ``MetadataStore.commit_inline``), made part
        ``part_number`` of the open upload as ``commit_part`` does."""

        def operation(session: Session) -> CommitOutcome:
            namespace_id = _namespace_id(session, new.namespace)
            _require_open(_locked_upload(session, upload_id, namespace_id))
            now = self._now()
            row = new_object_row(namespace_id, new, now)
            info = insert_inline(session, row, ObjectState.PART, new, body, md5_hex, checksum)
            return CommitOutcome(info, _swap_part(session, upload_id, part_number, info, now))

        return await self._write(operation)

    async def list_parts(
        self,
        upload_id: str,
        namespace: str,
        key: str,
        after_part_number: int = 0,
        limit: int = MAX_PARTS_PAGE,
    ) -> PartsPage:
        """The open upload's parts numbered above ``after_part_number``, in order."""
        limit = max(1, min(limit, MAX_PARTS_PAGE))

        def operation(session: Session) -> PartsPage:
            upload = _upload_of_key(session, upload_id, namespace, key, lock=False)
            _require_open(upload)
            rows = session.execute(
                select(UPLOAD_PARTS)
                .where(_PARTS.upload_id == upload_id, _PARTS.part_number > after_part_number)
                .order_by(_PARTS.part_number)
                .limit(limit + 1)
            ).all()
            parts = tuple(
                PartRecord(
                    part_number=r.part_number,
                    size_bytes=r.size_bytes,
                    md5_hex=r.md5_hex,
                    checksum=_checksum(r.checksum_algo, r.checksum_value),
                    uploaded_at=utc(r.uploaded_at),
                )
                for r in rows[:limit]
            )
            truncated = len(rows) > limit
            return PartsPage(
                upload=_upload_info(upload, namespace),
                parts=parts,
                truncated=truncated,
                next_part_number_marker=parts[-1].part_number if truncated else None,
            )

        return await self._read(operation)

    async def list_uploads(
        self,
        namespace: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        limit: int = MAX_UPLOADS_PAGE,
    ) -> UploadsPage:
        """The namespace's open uploads after the markers (see ``upload_listing``)."""
        limit = max(1, min(limit, MAX_UPLOADS_PAGE))

        def operation(session: Session) -> UploadsPage:
            listing = UploadListing(_namespace_id(session, namespace), prefix, delimiter, limit)
            page = listing.page(session, key_marker, upload_id_marker)
            return UploadsPage(
                uploads=tuple(_upload_info(row, namespace) for row in page.rows),
                common_prefixes=page.common_prefixes,
                truncated=page.truncated,
                next_key_marker=page.next_key_marker,
                next_upload_id_marker=page.next_upload_id_marker,
            )

        return await self._read(operation)

    # -- the end of an upload --------------------------------------------------------------

    async def complete(
        self,
        upload_id: str,
        namespace: str,
        key: str,
        listed: Sequence[ListedPart],
        combine: ChecksumCombiner,
        min_part_bytes: int,
        replace: bool = True,
        if_match: str | None = None,
        expected_checksum: StoredChecksum | None = None,
    ) -> CompletedUpload:
        """Makes the listed parts one committed object at the key, in one transaction, with
        no byte copied: the part rows become the object's (``object_parts``).

        Raises NoSuchUpload (no such open upload of that key), InvalidPartOrder, InvalidPart
        (a part not uploaded, or with another ETag or checksum), EntityTooSmall (see
        ``completion.chosen_parts``), BadDigest (``expected_checksum``, the whole object's
        checksum the client names, is not the one the parts make); AlreadyExists
        (``replace`` False: If-None-Match) and PreconditionFailed (``if_match``) as
        ``commit_upload``. On any of these the upload
        stays open, unchanged. Parts uploaded but not listed, and the version replaced with
        its parts, are dropped in the same transaction. A completed upload answers a Complete
        again with the object it made, whatever is listed, while its row is kept.
        """

        def operation(session: Session) -> CompletedUpload:
            upload = _upload_of_key(session, upload_id, namespace, key)
            if upload.state == UploadState.COMPLETED:
                return CompletedUpload(_completed_info(session, upload), None, ())
            _require_open(upload)
            stored = _stored_parts(session, upload_id)
            chosen = chosen_parts(listed, stored, min_part_bytes)
            checksum = object_checksum(upload.checksum_algo, upload.checksum_type, chosen, combine)
            check_expected(checksum, expected_checksum)
            now = self._now()
            replaced = take_key(
                session, upload.namespace_id, upload.key, Claim(replace, if_match), now
            )
            info = _insert_completed(session, upload, chosen, checksum, now)
            owned = frozenset(p.part_object_id for p in chosen)
            dropped = _drop_parts(session, upload_id, now, keep=owned)
            _touch(
                session,
                upload_id,
                now,
                state=UploadState.COMPLETED,
                final_object_id=info.object_id,
                final_etag=info.etag,
                final_size_bytes=info.size_bytes,
                final_checksum=None if checksum is None else checksum.value,
            )
            return CompletedUpload(info, replaced, tuple(dropped))

        return await commit_key(self._write, operation, replace)

    async def abort(self, upload_id: str, namespace: str, key: str) -> list[ChunkRef]:
        """Ends the upload, dropping every part row it holds; returns their chunks, queued as
        garbage in the same transaction. Aborting an aborted upload changes nothing; NoSuchUpload
        for a completed one or none. A part still being written then fails its commit."""

        def operation(session: Session) -> list[ChunkRef]:
            upload = _upload_of_key(session, upload_id, namespace, key)
            if upload.state == UploadState.ABORTED:
                return []
            _require_open(upload)
            return _abort_open(session, upload, self._now())

        return await self._write(operation)

    # -- expiry ----------------------------------------------------------------------------

    async def expire_idle(self, idle_since: datetime, limit: int) -> list[ExpiredUpload]:
        """Aborts up to ``limit`` open uploads with no activity since ``idle_since``, each in
        its own transaction that checks the idleness again (a part may just have come)."""

        def idle(session: Session) -> list[str]:
            return list(
                session.scalars(
                    select(_UPLOADS.upload_id)
                    .where(
                        _UPLOADS.state == UploadState.OPEN,
                        _UPLOADS.last_activity_at < idle_since,
                    )
                    .order_by(_UPLOADS.last_activity_at)
                    .limit(limit)
                )
            )

        def expire(upload_id: str) -> Any:
            def operation(session: Session) -> ExpiredUpload | None:
                row = session.execute(
                    select(MULTIPART_UPLOADS)
                    .where(_UPLOADS.upload_id == upload_id)
                    .with_for_update()
                ).one_or_none()
                if row is None or row.state != UploadState.OPEN:
                    return None
                if utc(row.last_activity_at) >= idle_since:
                    return None
                return ExpiredUpload(upload_id, tuple(_abort_open(session, row, self._now())))

            return operation

        expired = []
        for upload_id in await self._read(idle):
            outcome = await self._write(expire(upload_id))
            if outcome is not None:
                expired.append(outcome)
        return expired

    async def purge_finished(self, finished_before: datetime, limit: int) -> int:
        """Forgets up to ``limit`` completed or aborted uploads that ended before the moment
        (their parts are gone already); returns how many."""

        def operation(session: Session) -> int:
            ids = list(
                session.scalars(
                    select(_UPLOADS.upload_id)
                    .where(
                        _UPLOADS.state.in_([UploadState.COMPLETED, UploadState.ABORTED]),
                        _UPLOADS.last_activity_at < finished_before,
                    )
                    .limit(limit)
                )
            )
            if ids:
                session.execute(delete(MULTIPART_UPLOADS).where(_UPLOADS.upload_id.in_(ids)))
            return len(ids)

        return await self._write(operation)


def _stored_parts(session: Session, upload_id: str) -> dict[int, StoredPart]:
    rows = session.execute(
        select(
            UPLOAD_PARTS,
            OBJECTS.c.policy,
            OBJECTS.c.stripe_size_bytes,
            OBJECTS.c.segment_stripes,
            OBJECTS.c.gateway_id,
        )
        .join(OBJECTS, OBJECTS.c.id == _PARTS.part_object_id)
        .where(_PARTS.upload_id == upload_id)
    )
    return {
        r.part_number: StoredPart(
            part_number=r.part_number,
            part_object_id=r.part_object_id,
            size_bytes=r.size_bytes,
            md5_hex=r.md5_hex,
            checksum=_checksum(r.checksum_algo, r.checksum_value),
            policy=r.policy,
            stripe_size_bytes=r.stripe_size_bytes,
            segment_stripes=r.segment_stripes,
            gateway_id=r.gateway_id,
        )
        for r in rows
    }


def _insert_completed(
    session: Session,
    upload: Row[Any],
    parts: Sequence[StoredPart],
    checksum: StoredChecksum | None,
    now: datetime,
) -> ObjectInfo:
    """Inserts the committed object made of ``parts`` and its ``object_parts`` rows. It has no
    chunks of its own; its policy and geometry are its first part's, for display only."""
    first = parts[0]
    info = ObjectInfo(
        object_id=new_id(),
        key=upload.key.decode(),
        size_bytes=sum(p.size_bytes for p in parts),
        md5_hex=multipart_md5(parts),
        content_type=upload.content_type,
        policy=first.policy,
        stripe_size_bytes=first.stripe_size_bytes,
        segment_stripes=first.segment_stripes,
        created_at=now,
        attrs=ObjectAttributes.from_json(upload.attrs),
        checksum=checksum,
        part_count=len(parts),
    )
    session.execute(
        insert(OBJECTS).values(
            id=info.object_id,
            namespace_id=upload.namespace_id,
            key=upload.key,
            state=ObjectState.COMMITTED,
            size_bytes=info.size_bytes,
            md5_hex=info.md5_hex,
            content_type=info.content_type,
            policy=info.policy,
            stripe_size_bytes=info.stripe_size_bytes,
            segment_stripes=info.segment_stripes,
            gateway_id=first.gateway_id,
            created_at=now,
            committed_at=now,
            touched_at=None,
            attrs=upload.attrs,
            checksum_algo=None if checksum is None else checksum.algorithm,
            checksum_type=None if checksum is None else checksum.kind,
            checksum_value=None if checksum is None else checksum.value,
            part_count=len(parts),
        )
    )
    _insert_object_parts(session, info.object_id, parts)
    return info


def _insert_object_parts(session: Session, object_id: str, parts: Sequence[StoredPart]) -> None:
    rows = []
    offset = 0
    for index, part in enumerate(parts):
        rows.append(
            {
                "object_id": object_id,
                "part_index": index,
                "part_object_id": part.part_object_id,
                "offset_bytes": offset,
                "size_bytes": part.size_bytes,
            }
        )
        offset += part.size_bytes
    session.execute(insert(OBJECT_PARTS), rows)


def _completed_info(session: Session, upload: Row[Any]) -> ObjectInfo:
    """What a completed upload made: the object itself while it is still there, else what
    the upload's row kept of it (its geometry unknown: the object is gone)."""
    row = session.execute(
        select(OBJECTS).where(
            OBJECTS.c.id == upload.final_object_id, OBJECTS.c.state == ObjectState.COMMITTED
        )
    ).one_or_none()
    if row is not None:
        return object_info(row)
    md5_hex, _, count = str(upload.final_etag).partition("-")
    algorithm, kind = upload.checksum_algo, upload.checksum_type
    return ObjectInfo(
        object_id=upload.final_object_id,
        key=upload.key.decode(),
        size_bytes=upload.final_size_bytes or 0,
        md5_hex=md5_hex,
        content_type=upload.content_type,
        policy="",
        stripe_size_bytes=0,
        segment_stripes=0,
        created_at=utc(upload.last_activity_at),
        attrs=ObjectAttributes.from_json(upload.attrs),
        checksum=None
        if algorithm is None or kind is None or upload.final_checksum is None
        else StoredChecksum(algorithm, kind, upload.final_checksum),
        part_count=int(count or 0),
    )
