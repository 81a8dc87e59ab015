"""Accounts: access keys with sealed secrets, per-bucket grants, buckets' owners and ages, and
the check of the master key.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("namespaces") as namespaces:
        namespaces.add_column(sa.Column("created_at", sa.DateTime(timezone=True), nullable=True))
        namespaces.add_column(sa.Column("owner_key_id", sa.String(32), nullable=True))
    # The buckets there already (the native API's ``default``) are as old as this migration.
    op.execute(
        sa.table("namespaces", sa.column("created_at", sa.DateTime(timezone=True)))
        .update()
        .values(created_at=datetime.now(UTC))
    )
    if op.get_bind().dialect.name == "postgresql":
        # 0001 inserted ``default`` with its id given, which left the id sequence behind it:
        # the first bucket made since would take id 1 again.
        op.execute(
            "SELECT setval(pg_get_serial_sequence('namespaces', 'id'), "
            "(SELECT max(id) FROM namespaces))"
        )
    op.create_table(
        "access_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("secret_ct", sa.LargeBinary(), nullable=False),
        sa.Column("secret_nonce", sa.LargeBinary(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("can_create_buckets", sa.Boolean(), nullable=False),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name="pk_access_keys"),
    )
    op.create_table(
        "bucket_grants",
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("can_read", sa.Boolean(), nullable=False),
        sa.Column("can_write", sa.Boolean(), nullable=False),
        sa.Column("is_owner", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["namespace_id"], ["namespaces.id"], name="fk_bucket_grants_namespace_id_namespaces"
        ),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["access_keys.key_id"],
            name="fk_bucket_grants_key_id_access_keys",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("namespace_id", "key_id", name="pk_bucket_grants"),
    )
    op.create_index("ix_bucket_grants_key_id", "bucket_grants", ["key_id"])
    op.create_table(
        "secrets_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_secrets_check"),
    )


def downgrade() -> None:
    op.drop_table("secrets_check")
    op.drop_index("ix_bucket_grants_key_id", table_name="bucket_grants")
    op.drop_table("bucket_grants")
    op.drop_table("access_keys")
    with op.batch_alter_table("namespaces") as namespaces:
        namespaces.drop_column("owner_key_id")
        namespaces.drop_column("created_at")
