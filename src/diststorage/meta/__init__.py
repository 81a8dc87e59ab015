"""Object, chunk and node metadata in SQLite (embedded) or PostgreSQL, through SQLAlchemy."""

from diststorage.meta.account_records import BucketInfo, Grant, KeyInfo, StoredKey
from diststorage.meta.accounts import AccountStore
from diststorage.meta.bucket_names import check_bucket_name
from diststorage.meta.maintenance import MaintenanceStore
from diststorage.meta.records import (
    NO_ATTRIBUTES,
    ChunkRef,
    CommitOutcome,
    DegradedSegment,
    DiscardedObject,
    ListingPage,
    NewObject,
    NodeInfo,
    NodeReport,
    ObjectAttributes,
    ObjectInfo,
    ObjectLayout,
    PlannedChunk,
    RepairBacklog,
    RepairTaskRef,
    SegmentLayout,
    StaleUpload,
    StoredChecksum,
    StoredChunk,
)
from diststorage.meta.states import (
    DEFAULT_NAMESPACE,
    ChunkState,
    KeyState,
    NodeLifecycle,
    NodeLiveness,
    ObjectState,
)
from diststorage.meta.store import MAX_LIST_LIMIT, MetadataStore

__all__ = [
    "DEFAULT_NAMESPACE",
    "MAX_LIST_LIMIT",
    "NO_ATTRIBUTES",
    "AccountStore",
    "BucketInfo",
    "ChunkRef",
    "ChunkState",
    "CommitOutcome",
    "DegradedSegment",
    "DiscardedObject",
    "Grant",
    "KeyInfo",
    "KeyState",
    "ListingPage",
    "MaintenanceStore",
    "MetadataStore",
    "NewObject",
    "NodeInfo",
    "NodeLifecycle",
    "NodeLiveness",
    "NodeReport",
    "ObjectAttributes",
    "ObjectInfo",
    "ObjectLayout",
    "ObjectState",
    "PlannedChunk",
    "RepairBacklog",
    "RepairTaskRef",
    "SegmentLayout",
    "StaleUpload",
    "StoredChecksum",
    "StoredChunk",
    "StoredKey",
    "check_bucket_name",
]
