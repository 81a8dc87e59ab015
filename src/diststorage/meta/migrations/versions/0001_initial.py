"""Initial schema: namespaces, objects, chunks, garbage chunks, nodes.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_COMMITTED = sa.text("state = 'committed'")


def upgrade() -> None:
    namespaces = op.create_table(
        "namespaces",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_namespaces"),
        sa.UniqueConstraint("name", name="uq_namespaces_name"),
    )
    op.bulk_insert(namespaces, [{"id": 1, "name": "default"}])
    op.create_table(
        "objects",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.LargeBinary(1024), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("md5_hex", sa.String(32), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("stripe_size_bytes", sa.Integer(), nullable=False),
        sa.Column("segment_stripes", sa.Integer(), nullable=False),
        sa.Column("gateway_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["namespace_id"], ["namespaces.id"], name="fk_objects_namespace_id_namespaces"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_objects"),
    )
    op.create_index(
        "uq_objects_committed_key",
        "objects",
        ["namespace_id", "key"],
        unique=True,
        sqlite_where=_COMMITTED,
        postgresql_where=_COMMITTED,
    )
    op.create_index("ix_objects_state_created_at", "objects", ["state", "created_at"])
    op.create_table(
        "chunks",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("object_id", sa.String(32), nullable=False),
        sa.Column("segment_index", sa.Integer(), nullable=False),
        sa.Column("shard_index", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("block_crcs", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["objects.id"],
            name="fk_chunks_object_id_objects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_chunks"),
        sa.UniqueConstraint(
            "object_id",
            "segment_index",
            "shard_index",
            name="uq_chunks_object_id_segment_index_shard_index",
        ),
    )
    op.create_index("ix_chunks_node_id", "chunks", ["node_id"])
    op.create_table(
        "garbage_chunks",
        sa.Column("chunk_id", sa.String(32), nullable=False),
        sa.Column("node_id", sa.String(32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chunk_id", name="pk_garbage_chunks"),
    )
    op.create_index("ix_garbage_chunks_node_id", "garbage_chunks", ["node_id"])
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("address", sa.String(255), nullable=False),
        sa.Column("capacity_bytes", sa.BigInteger(), nullable=False),
        sa.Column("used_bytes", sa.BigInteger(), nullable=False),
        sa.Column("free_bytes", sa.BigInteger(), nullable=False),
        sa.Column("chunk_count", sa.BigInteger(), nullable=False),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_heartbeat", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
    )


def downgrade() -> None:
    op.drop_table("nodes")
    op.drop_table("garbage_chunks")
    op.drop_table("chunks")
    op.drop_table("objects")
    op.drop_table("namespaces")
