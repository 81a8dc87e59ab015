"""Object, chunk and node metadata in SQLite (embedded) or PostgreSQL, through SQLAlchemy."""

from diststorage.meta.records import (
    ChunkRef,
    CommitOutcome,
    DiscardedObject,
    ListingPage,
    NewObject,
    NodeInfo,
    ObjectInfo,
    ObjectLayout,
    PlannedChunk,
    StoredChunk,
)
from diststorage.meta.store import MAX_LIST_LIMIT, MetadataStore

__all__ = [
    "MAX_LIST_LIMIT",
    "ChunkRef",
    "CommitOutcome",
    "DiscardedObject",
    "ListingPage",
    "MetadataStore",
    "NewObject",
    "NodeInfo",
    "ObjectInfo",
    "ObjectLayout",
    "PlannedChunk",
    "StoredChunk",
]
