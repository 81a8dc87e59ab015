"""Plain records of multipart uploads, as the multipart store hands them out and takes them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from diststorage.meta.records import (
    ChunkRef,
    DiscardedObject,
    ObjectAttributes,
    ObjectInfo,
    StoredChecksum,
)

MAX_PART_NUMBER = 10_000


def part_key(upload_id: str, part_number: int) -> str:
    """The internal key of a part row: never a client's key (a NUL byte leads it), and part
    rows are never looked up by key anyway."""
    return f"\x00mpu/{upload_id}/{part_number}"


@dataclass(frozen=True, slots=True)
class NewUpload:
    """What CreateMultipartUpload records; the object completed from it gets these."""

    upload_id: str
    namespace: str
    key: str
    content_type: str
    attrs: ObjectAttributes
    # The flexible checksum asked for (S3 name, e.g. CRC32), and COMPOSITE or FULL_OBJECT.
    checksum_algorithm: str | None = None
    checksum_type: str | None = None
    initiator_key: str | None = None


@dataclass(frozen=True, slots=True)
class UploadInfo:
    upload_id: str
    namespace: str
    key: str
    state: str
    initiated_at: datetime
    last_activity_at: datetime
    content_type: str
    attrs: ObjectAttributes
    checksum_algorithm: str | None
    checksum_type: str | None
    initiator_key: str | None


@dataclass(frozen=True, slots=True)
class PartRecord:
    """A part of an open upload, as its last upload left it. ``checksum`` is the part's own
    (kind FULL_OBJECT), if it came with one."""

    part_number: int
    size_bytes: int
    md5_hex: str
    checksum: StoredChecksum | None
    uploaded_at: datetime

    @property
    def etag(self) -> str:
        return self.md5_hex


@dataclass(frozen=True, slots=True)
class ListedPart:
    """A part as a Complete request names it: its number, the ETag its upload answered
    (quoted or not), and the checksum the client has for it (kind ignored), if any."""

    part_number: int
    etag: str
    checksum: StoredChecksum | None = None


@dataclass(frozen=True, slots=True)
class PartsPage:
    upload: UploadInfo
    parts: tuple[PartRecord, ...]
    truncated: bool
    # The marker that asks for the next page (the last part number here), when truncated.
    next_part_number_marker: int | None


@dataclass(frozen=True, slots=True)
class UploadsPage:
    """Open uploads in (key, upload id) order; with a delimiter, the keys past it rolled up
    into common prefixes, each counted once toward the page's size."""

    uploads: tuple[UploadInfo, ...]
    common_prefixes: tuple[str, ...]
    truncated: bool
    next_key_marker: str | None
    next_upload_id_marker: str | None


@dataclass(frozen=True, slots=True)
class CompletedUpload:
    """The object a Complete made; the version it replaced (its chunks, and its parts', queued
    as garbage, to delete once no download reads it), and the chunks of the parts uploaded
    but not listed (queued too, to delete now)."""

    info: ObjectInfo
    replaced: DiscardedObject | None
    dropped_parts: tuple[ChunkRef, ...]


@dataclass(frozen=True, slots=True)
class ExpiredUpload:
    upload_id: str
    chunks: tuple[ChunkRef, ...]


class ChecksumCombiner(Protocol):
    """Computes a completed object's flexible checksum from its parts' (the gateway's
    checksum code; the store does no checksum arithmetic of its own)."""

    def __call__(self, algorithm: str, kind: str, parts: Sequence[tuple[str, int]]) -> str:
        """The object's checksum (base64; COMPOSITE ones end in ``-N``) from each part's
        base64 checksum and size, in order. Raises InvalidRequest for a kind the algorithm
        cannot have."""
        ...
