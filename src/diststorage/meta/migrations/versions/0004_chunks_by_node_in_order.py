"""Chunks by node in id order, for the audit that compares a node's listing with the metadata.

The composite index serves every lookup by node the single-column one did, so it replaces it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_chunks_node_id_id", "chunks", ["node_id", "id"])
    op.drop_index("ix_chunks_node_id", table_name="chunks")


def downgrade() -> None:
    op.create_index("ix_chunks_node_id", "chunks", ["node_id"])
    op.drop_index("ix_chunks_node_id_id", table_name="chunks")
