"""Multipart uploads: the uploads, the part rows each part number points at, and the parts of
objects completed from them. Parts themselves are ``objects`` rows in the new state ``part``
(a text column: nothing to migrate there).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _create_uploads()
    _create_upload_parts()
    _create_object_parts()


def _create_uploads() -> None:
    op.create_table(
        "multipart_uploads",
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("namespace_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.LargeBinary(1024), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("initiated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("initiator_key", sa.String(128), nullable=True),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("attrs", sa.Text(), nullable=True),
        sa.Column("checksum_algo", sa.String(16), nullable=True),
        sa.Column("checksum_type", sa.String(16), nullable=True),
        sa.Column("final_object_id", sa.String(32), nullable=True),
        sa.Column("final_etag", sa.String(48), nullable=True),
        sa.Column("final_size_bytes", sa.BigInteger(), nullable=True),
        sa.Column("final_checksum", sa.String(128), nullable=True),
        sa.ForeignKeyConstraint(
            ["namespace_id"], ["namespaces.id"], name="fk_multipart_uploads_namespace_id_namespaces"
        ),
        sa.PrimaryKeyConstraint("upload_id", name="pk_multipart_uploads"),
    )
    op.create_index(
        "ix_multipart_uploads_namespace_id_key_upload_id",
        "multipart_uploads",
        ["namespace_id", "key", "upload_id"],
    )
    op.create_index(
        "ix_multipart_uploads_state_last_activity_at",
        "multipart_uploads",
        ["state", "last_activity_at"],
    )


def _create_upload_parts() -> None:
    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.String(32), nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("part_object_id", sa.String(32), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("md5_hex", sa.String(32), nullable=False),
        sa.Column("checksum_algo", sa.String(16), nullable=True),
        sa.Column("checksum_value", sa.String(128), nullable=True),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["multipart_uploads.upload_id"],
            name="fk_upload_parts_upload_id_multipart_uploads",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["part_object_id"], ["objects.id"], name="fk_upload_parts_part_object_id_objects"
        ),
        sa.PrimaryKeyConstraint("upload_id", "part_number", name="pk_upload_parts"),
    )
    op.create_index(
        "ix_upload_parts_part_object_id", "upload_parts", ["part_object_id"], unique=True
    )


def _create_object_parts() -> None:
    op.create_table(
        "object_parts",
        sa.Column("object_id", sa.String(32), nullable=False),
        sa.Column("part_index", sa.Integer(), nullable=False),
        sa.Column("part_object_id", sa.String(32), nullable=False),
        sa.Column("offset_bytes", sa.BigInteger(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["object_id"],
            ["objects.id"],
            name="fk_object_parts_object_id_objects",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["part_object_id"], ["objects.id"], name="fk_object_parts_part_object_id_objects"
        ),
        sa.PrimaryKeyConstraint("object_id", "part_index", name="pk_object_parts"),
    )
    op.create_index(
        "ix_object_parts_part_object_id", "object_parts", ["part_object_id"], unique=True
    )


def downgrade() -> None:
    op.drop_table("object_parts")
    op.drop_table("upload_parts")
    op.drop_table("multipart_uploads")
