"""Plain records the store hands out; callers never see ORM rows."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from datetime import datetime

from diststorage.meta.states import NodeLifecycle


def pack_crcs(crcs: list[int]) -> bytes:
    return struct.pack(f">{len(crcs)}I", *crcs)


def unpack_crcs(packed: bytes) -> tuple[int, ...]:
    return struct.unpack(f">{len(packed) // 4}I", packed)


@dataclass(frozen=True, slots=True)
class ChunkRef:
    chunk_id: str
    node_id: str


@dataclass(frozen=True, slots=True)
class DiscardedObject:
    """An object version that stopped being visible; its chunks are queued as garbage."""

    object_id: str
    chunks: tuple[ChunkRef, ...]


@dataclass(frozen=True, slots=True)
class PlannedChunk:
    """A chunk chosen before its bytes are sent, so a crash leaves a findable record."""

    chunk_id: str
    node_id: str
    segment_index: int
    shard_index: int


@dataclass(frozen=True, slots=True)
class StoredChunk:
    chunk_id: str
    node_id: str
    segment_index: int
    shard_index: int
    size_bytes: int
    block_crcs: tuple[int, ...]
    state: str = "ok"
    # The blocks' digests concatenated (meta/digests.py); empty for a chunk written before
    # digests were recorded, which reads verify by CRC alone.
    block_digests: bytes = b""


@dataclass(frozen=True, slots=True)
class DegradedSegment:
    """A segment committed below its redundancy target (a node failed or was missing)."""

    segment_index: int
    stripe_count: int
    margin: int


def entity_tag(md5_hex: str, part_count: int | None) -> str:
    """An object's ETag, unquoted: the body's MD5, or for a multipart object the MD5 of its
    parts' MD5s and their count."""
    return f"{md5_hex}-{part_count}" if part_count else md5_hex


@dataclass(frozen=True, slots=True)
class ObjectAttributes:
    """What a client stores beside an object's bytes and gets back with them: user metadata
    (``x-amz-meta-*`` names without the prefix, lowercased) and representation headers
    (Content-Encoding, Content-Disposition, Content-Language, Cache-Control, Expires), each as
    (name, value) pairs in the order given."""

    user_meta: tuple[tuple[str, str], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    def to_json(self) -> str | None:
        """The column's value: None when there is nothing to keep."""
        if not self.user_meta and not self.headers:
            return None
        return json.dumps({"meta": self.user_meta, "headers": self.headers}, ensure_ascii=False)

    @staticmethod
    def from_json(text: str | None) -> ObjectAttributes:
        if not text:
            return NO_ATTRIBUTES
        document = json.loads(text)
        return ObjectAttributes(
            user_meta=tuple((str(n), str(v)) for n, v in document.get("meta", ())),
            headers=tuple((str(n), str(v)) for n, v in document.get("headers", ())),
        )


NO_ATTRIBUTES = ObjectAttributes()


@dataclass(frozen=True, slots=True)
class StoredChecksum:
    """A flexible checksum kept with an object: ``algorithm`` as S3 names it (CRC32, CRC32C,
    CRC64NVME, SHA1, SHA256), ``kind`` FULL_OBJECT or COMPOSITE, ``value`` base64 (a
    composite value ends in ``-N``)."""

    algorithm: str
    kind: str
    value: str


@dataclass(frozen=True, slots=True)
class NewObject:
    object_id: str
    namespace: str
    key: str
    content_type: str
    policy: str
    stripe_size_bytes: int
    segment_stripes: int
    gateway_id: str
    attrs: ObjectAttributes = NO_ATTRIBUTES


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    object_id: str
    key: str
    size_bytes: int
    md5_hex: str
    content_type: str
    policy: str
    stripe_size_bytes: int
    segment_stripes: int
    created_at: datetime
    attrs: ObjectAttributes = NO_ATTRIBUTES
    checksum: StoredChecksum | None = None
    part_count: int = 0

    @property
    def etag(self) -> str:
        return entity_tag(self.md5_hex, self.part_count)


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """The object as committed, and the version it replaced, if any."""

    info: ObjectInfo
    replaced: DiscardedObject | None


@dataclass(frozen=True, slots=True)
class ObjectLayout:
    """A committed object and every chunk that holds it, or its bytes when it is kept inline;
    for an object completed from parts (``info.part_count`` > 0), no chunks but its parts."""

    info: ObjectInfo
    chunks: tuple[StoredChunk, ...]
    inline_body: bytes | None = None
    parts: tuple[PartLayout, ...] = ()


@dataclass(frozen=True, slots=True)
class PartLayout:
    """One part of an object completed from parts: where its bytes start in the object, and
    the part row's own layout (its geometry and chunks, or its inline body)."""

    offset_bytes: int
    layout: ObjectLayout

    @property
    def end_bytes(self) -> int:
        """Where the part's bytes end in the object (exclusive)."""
        return self.offset_bytes + self.layout.info.size_bytes


@dataclass(frozen=True, slots=True)
class ListingPage:
    objects: tuple[ObjectInfo, ...]
    truncated: bool


@dataclass(frozen=True, slots=True)
class KeyPage:
    """One page of an S3-style listing (MetadataStore.list_keys): the objects and the common
    prefixes it holds, each tuple in byte order of the keys (together they make one merged
    order), whether more entries follow, and where the next page starts: the page's last key
    or common prefix when truncated, else None. Handed back as the next ``start_after``, a
    common prefix skips every key under it."""

    objects: tuple[ObjectInfo, ...]
    common_prefixes: tuple[str, ...]
    truncated: bool
    next_start_after: str | None


@dataclass(frozen=True, slots=True)
class NodeReport:
    """What a node says about itself in each heartbeat."""

    node_id: str
    address: str
    capacity_bytes: int
    used_bytes: int
    free_bytes: int
    chunk_count: int


@dataclass(frozen=True, slots=True)
class NodeInfo(NodeReport):
    """A node as the node table keeps it: its last report, and what the gateways know."""

    first_seen: datetime
    last_heartbeat: datetime
    lifecycle: NodeLifecycle = NodeLifecycle.ACTIVE


@dataclass(frozen=True, slots=True)
class RepairTaskRef:
    object_id: str
    segment_index: int
    margin: int
    attempts: int


@dataclass(frozen=True, slots=True)
class AtRiskSegment:
    """A queued repair task with its object's key, for people to look at."""

    key: str
    object_id: str
    segment_index: int
    stripe_count: int
    # Surviving shards minus shards needed to read, when the task was queued.
    margin: int
    attempts: int
    not_before: datetime


@dataclass(frozen=True, slots=True)
class SegmentLayout:
    """One committed segment's chunks, damaged ones included, for the repair worker."""

    info: ObjectInfo
    segment_index: int
    chunks: tuple[StoredChunk, ...]


@dataclass(frozen=True, slots=True)
class SpareStripes:
    """Of the at-risk segments of one policy, those that can lose ``spare`` more nodes and
    still be read (negative: short of that many shards already): how many, and their stripes."""

    policy: str
    spare: int
    segments: int
    stripes: int


@dataclass(frozen=True, slots=True)
class StripeTotals:
    """Every stored stripe per policy (inline objects have none), and the objects and parts
    kept whole in the database instead."""

    stripes_by_policy: dict[str, int]
    inline_objects: int


@dataclass(frozen=True, slots=True)
class RepairBacklog:
    segments_queued: int
    stripes_queued: int
    # Queued stripes plus stripes with a shard on a node that is not up right now.
    stripes_below_target: int
    # Of those segments, the fewest further shard losses any survives (None: none is short).
    fewest_spare_shards: int | None = None
    # The same segments grouped by policy and spare, most at risk first.
    at_risk: tuple[SpareStripes, ...] = ()


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str
    expires_at: datetime
    # The JSON object the holder published with its last renewal (None: nothing).
    figures: str | None


@dataclass(frozen=True, slots=True)
class StaleUpload:
    object_id: str
    gateway_id: str


@dataclass(frozen=True, slots=True)
class PlacedChunk:
    """A chunk as the object layout shows it: where it is and what the metadata says of it."""

    chunk_id: str
    node_id: str
    shard_index: int
    size_bytes: int
    state: str


@dataclass(frozen=True, slots=True)
class PlacedSegment:
    """One segment of an object and the chunks its metadata records (any shard index may have
    none). ``part_index`` is the part it belongs to in an object completed from parts (from 0,
    in the object's order), else None; ``offset_bytes`` is where its bytes start in the
    object, ``segment_index`` its index within its part (or object)."""

    part_index: int | None
    segment_index: int
    policy: str
    offset_bytes: int
    size_bytes: int
    stripe_count: int
    chunks: tuple[PlacedChunk, ...]


@dataclass(frozen=True, slots=True)
class SegmentPage:
    """A committed object and a page of its segments, from position ``start`` (segments
    counted across its parts): see meta.placement. ``inline``: its bytes are in the
    database, and it has no segment; ``inline_parts``: parts kept so, which have none."""

    info: ObjectInfo
    inline: bool
    segment_count: int
    inline_parts: int
    start: int
    segments: tuple[PlacedSegment, ...]

    @property
    def next_start(self) -> int | None:
        """Where the next page starts; None after the last segment."""
        end = self.start + len(self.segments)
        return end if end < self.segment_count else None
