"""Object, chunk and node metadata in SQLite (embedded) or PostgreSQL, through SQLAlchemy."""

from diststorage.meta.maintenance import MaintenanceStore
from diststorage.meta.records import (
    ChunkRef,
    CommitOutcome,
    DegradedSegment,
    DiscardedObject,
    ListingPage,
    NewObject,
    NodeInfo,
    NodeReport,
    ObjectInfo,
    ObjectLayout,
    PlannedChunk,
    RepairBacklog,
    RepairTaskRef,
    SegmentLayout,
    StaleUpload,
    StoredChunk,
)
from diststorage.meta.states import (
    DEFAULT_NAMESPACE,
    ChunkState,
    NodeLifecycle,
    NodeLiveness,
    ObjectState,
)
from diststorage.meta.store import MAX_LIST_LIMIT, MetadataStore

__all__ = [
    "DEFAULT_NAMESPACE",
    "MAX_LIST_LIMIT",
    "ChunkRef",
    "ChunkState",
    "CommitOutcome",
    "DegradedSegment",
    "DiscardedObject",
    "ListingPage",
    "MaintenanceStore",
    "MetadataStore",
    "NewObject",
    "NodeInfo",
    "NodeLifecycle",
    "NodeLiveness",
    "NodeReport",
    "ObjectInfo",
    "ObjectLayout",
    "ObjectState",
    "PlannedChunk",
    "RepairBacklog",
    "RepairTaskRef",
    "SegmentLayout",
    "StaleUpload",
    "StoredChunk",
]
