"""Multipart uploads as front ends call them: create, upload (or copy) parts, complete,
abort, list.

A part is stored by the ordinary write pipeline as a part row of its upload (``PartOf``):
its own policy, geometry, chunks, degraded-write handling and repair, like any object. Complete
is one metadata transaction that makes the listed part rows the object's; no byte is copied.
Every chunk a part row leaves behind (replaced, unlisted, aborted, expired) is queued as
garbage in the transaction that dropped it, and deleted here at once, or after the downloads
of a replaced object end.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from diststorage.core.errors import (
    AlreadyExists,
    InvalidPartNumber,
    InvalidRequest,
    PayloadTooLarge,
    PreconditionFailed,
    RangeNotSatisfiable,
)
from diststorage.core.ids import new_id
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.objects.checksumming import checksumming_body
from diststorage.gateway.objects.operations import (
    ByteRange,
    PartOf,
    PutOperation,
    RangeSpec,
    check_content_type,
)
from diststorage.gateway.objects.part_checksums import checksum_choice, combine_part_checksums
from diststorage.gateway.objects.ports import (
    BodyWrapper,
    ByteSource,
    ChecksumSource,
    ChunkDeleter,
    ReadTracker,
)
from diststorage.gateway.objects.reader import ObjectReader
from diststorage.gateway.objects.streamed_body import StreamedBody, close_stream
from diststorage.gateway.objects.writer import ObjectWriter
from diststorage.meta import (
    MAX_PART_NUMBER,
    ChunkRef,
    ListedPart,
    MetadataStore,
    NewUpload,
    ObjectAttributes,
    ObjectInfo,
    ObjectLayout,
    PartsPage,
    StoredChecksum,
    UploadInfo,
    UploadsPage,
    part_key,
)

MAX_PART_BYTES = 5 << 30
PART_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class PartInfo:
    """What UploadPart answers: the part's ETag (its MD5, unquoted) and the checksum it was
    stored with, if any."""

    etag: str
    checksum: StoredChecksum | None


@dataclass(frozen=True, slots=True)
class PartRange:
    """Where part N of an object lies (GET/HEAD ``?partNumber=N``), and how many parts the
    object has (0 for an object not made of parts, whose one part is all of it)."""

    byte_range: ByteRange
    part_count: int


def check_part_number(part_number: int) -> None:
    if not 1 <= part_number <= MAX_PART_NUMBER:
        raise InvalidRequest(f"part number {part_number} is not between 1 and {MAX_PART_NUMBER}")


def part_range(layout: ObjectLayout, part_number: int) -> PartRange:
    """Part ``part_number`` (1-based, in the order the object was completed) of the object;
    InvalidPartNumber past its parts."""
    info = layout.info
    if not info.part_count:
        if part_number != 1:
            raise InvalidPartNumber(f"the object has one part, not {part_number}", info.size_bytes)
        return PartRange(ByteRange(0, info.size_bytes), 0)
    if not 1 <= part_number <= len(layout.parts):
        raise InvalidPartNumber(
            f"the object has {info.part_count} parts, not {part_number}", info.size_bytes
        )
    part = layout.parts[part_number - 1]
    return PartRange(ByteRange(part.offset_bytes, part.end_bytes), info.part_count)


def read_span(spec: RangeSpec | None) -> Callable[[ObjectInfo], tuple[int, int]]:
    """The bytes of an object that a read of ``spec`` needs, for ``get_layout`` to load only
    the parts holding them; none for a range that misses the object (its 416 comes later,
    after any conditions are judged)."""

    def span(info: ObjectInfo) -> tuple[int, int]:
        if spec is None:
            return (0, info.size_bytes)
        try:
            selected = spec.resolve(info.size_bytes)
        except RangeNotSatisfiable:
            return (0, 0)
        return (selected.start, selected.end)

    return span


def copy_range(spec: RangeSpec | None, size: int) -> ByteRange:
    """The source bytes an UploadPartCopy takes: all of them, or a range that must lie within
    the source (``x-amz-copy-source-range`` is never clamped)."""
    if spec is None:
        return ByteRange(0, size)
    if spec.first is None or spec.last is None or spec.first > spec.last or spec.last >= size:
        raise RangeNotSatisfiable(f"copy range {spec.text} is not within the source", size)
    return ByteRange(spec.first, spec.last + 1)


class Multipart:
    def __init__(
        self,
        settings: GatewaySettings,
        store: MetadataStore,
        writer: ObjectWriter,
        reader: ObjectReader,
        reads: ReadTracker,
        janitor: ChunkDeleter,
    ) -> None:
        self._settings = settings
        self._store = store
        self._writer = writer
        self._reader = reader
        self._reads = reads
        self._janitor = janitor

    async def create(
        self,
        namespace: str,
        key: str,
        content_type: str,
        attrs: ObjectAttributes,
        checksum_algorithm: str | None = None,
        checksum_type: str | None = None,
        initiator_key: str | None = None,
    ) -> str:
        """Starts an upload to the key; returns its id. The completed object gets the content
        type and attributes given here. InvalidRequest for a Content-Type wider than the
        metadata keeps, or a checksum S3 refuses (a type without an algorithm, FULL_OBJECT
        SHAs, COMPOSITE CRC64NVME)."""
        check_content_type(content_type)
        algorithm, kind = checksum_choice(checksum_algorithm, checksum_type)
        upload_id = new_id()
        await self._store.multipart.create_upload(
            NewUpload(
                upload_id=upload_id,
                namespace=namespace,
                key=key,
                content_type=content_type,
                attrs=attrs,
                checksum_algorithm=algorithm,
                checksum_type=kind,
                initiator_key=initiator_key,
            )
        )
        return upload_id

    async def upload(self, upload_id: str, namespace: str, key: str) -> UploadInfo:
        """The open upload (its checksum algorithm, for one); NoSuchUpload for none."""
        return await self._store.multipart.open_upload(upload_id, namespace, key)

    async def upload_part(
        self,
        upload_id: str,
        namespace: str,
        key: str,
        part_number: int,
        declared_size: int | None,
        body: ByteSource,
        checksum: ChecksumSource | None = None,
        wrap: BodyWrapper | None = checksumming_body,
    ) -> PartInfo:
        """Stores the body as part ``part_number``, replacing any part uploaded under that
        number (whose chunks go). ``checksum`` is the one the client sent, verified by the
        body; without one, ``wrap`` computes the checksum the upload was created with, if any
        (by default as the bytes pass). Raises NoSuchUpload for an upload not open (also when
        it ends while the part is written: the part's chunks are then deleted), InvalidRequest
        for a part number outside 1..10000, PayloadTooLarge above 5 GiB, and what
        ``ObjectWriter.write`` raises."""
        check_part_number(part_number)
        if declared_size is not None and declared_size > MAX_PART_BYTES:
            raise PayloadTooLarge(f"a part may hold at most {MAX_PART_BYTES} bytes")
        # A cheap refusal before any byte is stored; the part's commit decides again.
        upload = await self._store.multipart.open_upload(upload_id, namespace, key)
        if checksum is None and wrap is not None and upload.checksum_algorithm is not None:
            body, checksum = wrap(upload.checksum_algorithm, body)
        operation = self._part_operation(upload_id, namespace, part_number, declared_size)
        info = await self._writer.write(operation, body, checksum)
        return PartInfo(info.md5_hex, info.checksum)

    async def upload_part_copy(
        self,
        upload_id: str,
        namespace: str,
        key: str,
        part_number: int,
        source_namespace: str,
        source_key: str,
        byte_range: RangeSpec | None = None,
        wrap: BodyWrapper | None = checksumming_body,
    ) -> PartInfo:
        """Stores bytes of a committed object (all, or ``byte_range``) as part
        ``part_number``, streamed through the read pipeline into the write pipeline: memory
        stays a few stripes whatever the size. ``wrap`` computes the part's checksum on the
        way, when the upload was created with an algorithm (Complete then needs every part's).
        Raises as ``upload_part``, and ObjectNotFound for no source, RangeNotSatisfiable for a
        range not within it."""
        check_part_number(part_number)
        upload = await self._store.multipart.open_upload(upload_id, namespace, key)
        layout = await self._store.get_layout(source_namespace, source_key)
        copied = copy_range(byte_range, layout.info.size_bytes)
        if copied.length > MAX_PART_BYTES:
            raise PayloadTooLarge(f"a part may hold at most {MAX_PART_BYTES} bytes")
        operation = self._part_operation(upload_id, namespace, part_number, copied.length)
        with self._reads.reading(layout.info.object_id):
            pieces = self._reader.stream(layout, copied.start, copied.end)
            body: ByteSource = StreamedBody(pieces)
            checksum: ChecksumSource | None = None
            if wrap is not None and upload.checksum_algorithm is not None:
                body, checksum = wrap(upload.checksum_algorithm, body)
            try:
                info = await self._writer.write(operation, body, checksum)
            finally:
                await close_stream(pieces)
        return PartInfo(info.md5_hex, info.checksum)

    def _part_operation(
        self, upload_id: str, namespace: str, part_number: int, declared_size: int | None
    ) -> PutOperation:
        return PutOperation(
            namespace=namespace,
            key=part_key(upload_id, part_number),
            content_type=PART_CONTENT_TYPE,
            requested_policy=None,
            declared_size=declared_size,
            replace=True,
            part=PartOf(upload_id, part_number),
        )

    async def complete(
        self,
        upload_id: str,
        namespace: str,
        key: str,
        parts: Sequence[ListedPart],
        if_match: str | None = None,
        if_none_match: bool = False,
        expected_checksum: StoredChecksum | None = None,
    ) -> ObjectInfo:
        """Makes the listed parts the object at the key (see ``MultipartStore.complete`` for
        the rules and errors). ``if_none_match`` (``If-None-Match: *``) completes only where
        no object is, ``if_match`` only over the version with that ETag: PreconditionFailed
        otherwise, decided in the transaction (of racing Completes, one wins).
        ``expected_checksum`` is the whole object's checksum as the client sent it (BadDigest
        unless the parts make it). A retried Complete of a completed upload answers the same
        object."""
        try:
            completed = await self._store.multipart.complete(
                upload_id,
                namespace,
                key,
                parts,
                combine_part_checksums,
                self._settings.multipart_min_part_bytes,
                replace=not if_none_match,
                if_match=if_match,
                expected_checksum=expected_checksum,
            )
        except AlreadyExists as exc:
            raise PreconditionFailed(f"an object exists under key {key!r}") from exc
        self._delete_unread(upload_id, completed.dropped_parts)
        if completed.replaced is not None:
            replaced = completed.replaced
            self._janitor.delete_after_reads(replaced.object_id, replaced.chunks)
        return completed.info

    async def abort(self, upload_id: str, namespace: str, key: str) -> None:
        """Ends the upload and deletes its parts; again on an aborted upload does nothing.
        NoSuchUpload for none, or a completed one."""
        self._delete_unread(upload_id, await self._store.multipart.abort(upload_id, namespace, key))

    def _delete_unread(self, upload_id: str, refs: Sequence[ChunkRef]) -> None:
        # No download ever reads a part row of an upload (only objects, by their own id), so
        # these go at once; they are queued as garbage already, should this not get there.
        self._janitor.delete_after_reads(upload_id, refs)

    async def list_parts(
        self,
        upload_id: str,
        namespace: str,
        key: str,
        part_number_marker: int = 0,
        max_parts: int = 1000,
    ) -> PartsPage:
        """The open upload's parts numbered above the marker; NoSuchUpload for none."""
        return await self._store.multipart.list_parts(
            upload_id, namespace, key, part_number_marker, max_parts
        )

    async def list_uploads(
        self,
        namespace: str,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        """The namespace's open uploads after the markers, in (key, upload id) order."""
        return await self._store.multipart.list_uploads(
            namespace, prefix, delimiter, key_marker, upload_id_marker, max_uploads
        )
