"""What S3 stores beside an object's bytes: user metadata and representation headers, the
flexible checksum, and the part count of a multipart object.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("objects") as batch:
        batch.add_column(sa.Column("attrs", sa.Text(), nullable=True))
        batch.add_column(sa.Column("checksum_algo", sa.String(16), nullable=True))
        batch.add_column(sa.Column("checksum_type", sa.String(16), nullable=True))
        batch.add_column(sa.Column("checksum_value", sa.String(128), nullable=True))
        batch.add_column(
            sa.Column("part_count", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("objects") as batch:
        for column in ("part_count", "checksum_value", "checksum_type", "checksum_algo", "attrs"):
            batch.drop_column(column)
