"""A cryptographic digest of every block, kept with the chunk's row: reads verify blocks
against it, so a node that rewrites a block and fixes up its CRC is caught. Chunks written
before this revision keep NULL and are verified by CRC alone.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-05
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable with no default: adding it rewrites no row on either database.
    with op.batch_alter_table("chunks") as batch:
        batch.add_column(sa.Column("block_digests", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("chunks") as batch:
        batch.drop_column("block_digests")
