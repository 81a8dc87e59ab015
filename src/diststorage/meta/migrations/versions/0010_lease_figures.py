"""What the workers' leader publishes of its progress with each lease renewal (a JSON object),
so that every gateway can show the leader's repair figures, not its own idle ones.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable with no default: adding it rewrites no row on either database.
    with op.batch_alter_table("leases") as batch:
        batch.add_column(sa.Column("figures", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("figures")
