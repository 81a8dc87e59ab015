"""Plain records the store hands out; callers never see ORM rows."""

from __future__ import annotations

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


@dataclass(frozen=True, slots=True)
class DegradedSegment:
    """A segment committed below its redundancy target (a node failed or was missing)."""

    segment_index: int
    stripe_count: int
    margin: int


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


@dataclass(frozen=True, slots=True)
class CommitOutcome:
    """The object as committed, and the version it replaced, if any."""

    info: ObjectInfo
    replaced: DiscardedObject | None


@dataclass(frozen=True, slots=True)
class ObjectLayout:
    """A committed object and every chunk that holds it, or its bytes when it is kept inline."""

    info: ObjectInfo
    chunks: tuple[StoredChunk, ...]
    inline_body: bytes | None = None


@dataclass(frozen=True, slots=True)
class ListingPage:
    objects: tuple[ObjectInfo, ...]
    truncated: bool


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
class SegmentLayout:
    """One committed segment's chunks, damaged ones included, for the repair worker."""

    info: ObjectInfo
    segment_index: int
    chunks: tuple[StoredChunk, ...]


@dataclass(frozen=True, slots=True)
class RepairBacklog:
    segments_queued: int
    stripes_queued: int
    # Queued stripes plus stripes with a shard on a node that is not up right now.
    stripes_below_target: int
    # Of those segments, the fewest further shard losses any survives (None: none is short).
    fewest_spare_shards: int | None = None


@dataclass(frozen=True, slots=True)
class StaleUpload:
    object_id: str
    gateway_id: str
