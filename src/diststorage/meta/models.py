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
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DEFAULT_NAMESPACE = "default"
PENDING = "pending"
COMMITTED = "committed"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Namespace(Base):
    __tablename__ = "namespaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(255), unique=True)


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


class ChunkRow(Base):
    """One chunk file on one node: shard ``shard_index`` of every stripe in one segment."""

    __tablename__ = "chunks"
    __table_args__ = (UniqueConstraint("object_id", "segment_index", "shard_index"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    object_id: Mapped[str] = mapped_column(ForeignKey("objects.id", ondelete="CASCADE"))
    segment_index: Mapped[int] = mapped_column(Integer)
    shard_index: Mapped[int] = mapped_column(Integer)
    node_id: Mapped[str] = mapped_column(String(32), index=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # CRC-32C of each block, 4 bytes big-endian apiece, recorded at commit: reads verify
    # against this, not only against what the node says.
    block_crcs: Mapped[bytes] = mapped_column(LargeBinary, default=b"")


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
