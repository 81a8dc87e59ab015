"""Tables. Keys are stored as bytes so both SQLite and PostgreSQL order and compare them by
their UTF-8 bytes, with no collation in play (and S3-style listings come out in byte order)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from diststorage.meta.states import ChunkState, NodeLifecycle

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Namespace(Base):
    """A bucket: its objects' keys are unique within it. ``default`` holds the native API's
    objects; it and buckets from before accounts have no owner."""

    __tablename__ = "namespaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The access key that created it (no foreign key: the root key is not stored).
    owner_key_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class ObjectRow(Base):
    """One version of an object. ``pending`` while its upload runs, ``committed`` once visible."""

    __tablename__ = "objects"
    __table_args__ = (
        # At most one committed version per key; pending uploads of the same key may coexist.
        Index(
            "uq_objects_committed_key",
            "namespace_id",
            "key",
            unique=True,
            sqlite_where=text("state = 'committed'"),
            postgresql_where=text("state = 'committed'"),
        ),
        Index("ix_objects_state_created_at", "state", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id"))
    key: Mapped[bytes] = mapped_column(LargeBinary(1024))
    state: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    md5_hex: Mapped[str] = mapped_column(String(32))
    content_type: Mapped[str] = mapped_column(String(255))
    policy: Mapped[str] = mapped_column(String(32))
    stripe_size_bytes: Mapped[int] = mapped_column(Integer)
    segment_stripes: Mapped[int] = mapped_column(Integer)
    gateway_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    committed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # A pending upload's gateway touches it while the upload runs; garbage collection takes
    # only pending uploads left untouched longer than its grace period.
    touched_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # What the client stored beside the bytes (user metadata, Content-Encoding and the other
    # representation headers) as one JSON document; NULL when there is none (the native API).
    attrs: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The flexible checksum the client asked for (S3 x-amz-checksum-*): algorithm, FULL_OBJECT
    # or COMPOSITE, and the base64 value (composite values end in "-N").
    checksum_algo: Mapped[str | None] = mapped_column(String(16), nullable=True)
    checksum_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    checksum_value: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # Parts of a multipart object (0 for any other): the ETag is md5_hex, or md5_hex-N.
    part_count: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class ChunkRow(Base):
    """One chunk file on one node: shard ``shard_index`` of every stripe in one segment."""

    __tablename__ = "chunks"
    __table_args__ = (
        UniqueConstraint("object_id", "segment_index", "shard_index"),
        # A node's chunks in id order: the audit walks them beside the node's own listing.
        Index("ix_chunks_node_id_id", "node_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    object_id: Mapped[str] = mapped_column(ForeignKey("objects.id", ondelete="CASCADE"))
    segment_index: Mapped[int] = mapped_column(Integer)
    shard_index: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # CRC-32C of each block, 4 bytes big-endian apiece, recorded at commit: reads verify
    # against this, not only against what the node says.
    block_crcs: Mapped[bytes] = mapped_column(LargeBinary, default=b"")
    # The cryptographic digest of each block (meta/digests.py), recorded at commit and never
    # held by the node, so a node cannot make a gateway serve bytes it did not commit. NULL
    # for chunks written before digests were recorded: those are verified by CRC alone.
    block_digests: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    state: Mapped[str] = mapped_column(
        String(16), default=ChunkState.OK, server_default=ChunkState.OK
    )


class InlineBody(Base):
    """The bytes of a small object kept in the database instead of on nodes (see
    ``INLINE_POLICY``): written in the transaction that commits the object, gone with it."""

    __tablename__ = "inline_bodies"

    object_id: Mapped[str] = mapped_column(
        ForeignKey("objects.id", ondelete="CASCADE"), primary_key=True
    )
    body: Mapped[bytes] = mapped_column(LargeBinary)


class RepairTask(Base):
    """A segment that may be below its redundancy target, waiting for the repair worker.

    Queued in the same transaction as whatever made the segment short (a degraded write, a
    damaged chunk, a node declared lost or drained), so the queue survives any crash.
    ``margin`` is surviving shards minus shards needed to read: lower is more at risk.
    """

    __tablename__ = "repair_tasks"
    __table_args__ = (Index("ix_repair_tasks_margin_not_before", "margin", "not_before"),)

    object_id: Mapped[str] = mapped_column(
        ForeignKey("objects.id", ondelete="CASCADE"), primary_key=True
    )
    segment_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    stripe_count: Mapped[int] = mapped_column(Integer)
    margin: Mapped[int] = mapped_column(Integer)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    not_before: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GarbageChunk(Base):
    """A chunk no object needs any more, still to be deleted from its node."""

    __tablename__ = "garbage_chunks"

    chunk_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NodeRow(Base):
    __tablename__ = "nodes"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    address: Mapped[str] = mapped_column(String(255))
    capacity_bytes: Mapped[int] = mapped_column(BigInteger)
    used_bytes: Mapped[int] = mapped_column(BigInteger)
    free_bytes: Mapped[int] = mapped_column(BigInteger)
    chunk_count: Mapped[int] = mapped_column(BigInteger)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_heartbeat: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    lifecycle: Mapped[str] = mapped_column(
        String(16), default=NodeLifecycle.ACTIVE, server_default=NodeLifecycle.ACTIVE
    )


class LeaseRow(Base):
    """A named lease (the background workers' leadership): who holds it, until when."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # What the holder publishes of its work (a JSON object) with each renewal, so that every
    # other gateway can show the leader's progress instead of its own idle counters.
    figures: Mapped[str | None] = mapped_column(Text, nullable=True)


# The plain tables, for the store's hot statements: a statement that names a mapped attribute
# (``ObjectRow.id``) runs through the ORM's execution layer, which costs about as much CPU per
# call as a small SQLite statement itself.
OBJECTS = Base.metadata.tables[ObjectRow.__tablename__]
CHUNKS = Base.metadata.tables[ChunkRow.__tablename__]
INLINE_BODIES = Base.metadata.tables[InlineBody.__tablename__]


# The access key and grant tables live in their own module; importing it here puts them in
# ``Base.metadata`` wherever the models are (the migrations' comparison, the store).
from diststorage.meta import account_models  # noqa: E402, F401
