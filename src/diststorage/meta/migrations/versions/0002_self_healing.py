"""Self-healing: chunk states, the repair queue, node lifecycle, touched pending uploads.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chunks") as chunks:
        chunks.add_column(sa.Column("state", sa.String(16), nullable=False, server_default="ok"))
    with op.batch_alter_table("nodes") as nodes:
        nodes.add_column(
            sa.Column("lifecycle", sa.String(16), nullable=False, server_default="active")
        )
    with op.batch_alter_table("objects") as objects:
        objects.add_column(sa.Column("touched_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "repair_tasks",
        sa.Column("object_id", sa.String(32), nullable=False),
        sa.Column("segment_index", sa.Integer(), nullable=False),
        sa.Column("stripe_count", sa.Integer(), nullable=False),
        sa.Column("margin", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["objects.id"],
            name="fk_repair_tasks_object_id_objects",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("object_id", "segment_index", name="pk_repair_tasks"),
    )
    op.create_index("ix_repair_tasks_margin_not_before", "repair_tasks", ["margin", "not_before"])


def downgrade() -> None:
    op.drop_index("ix_repair_tasks_margin_not_before", table_name="repair_tasks")
    op.drop_table("repair_tasks")
    with op.batch_alter_table("objects") as objects:
        objects.drop_column("touched_at")
    with op.batch_alter_table("nodes") as nodes:
        nodes.drop_column("lifecycle")
    with op.batch_alter_table("chunks") as chunks:
        chunks.drop_column("state")
