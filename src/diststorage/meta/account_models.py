"""Tables of access keys, their grants on buckets, and the check of the master key.

A key's secret is stored sealed (``core.secrets``), never in the clear: ``secret_ct`` is the
AES-GCM ciphertext with its tag and ``secret_nonce`` its nonce. The one ``secrets_check`` row
holds a value sealed under the master key the database was first given, so a gateway given
another master key notices at start instead of failing every signature.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from diststorage.meta.models import Base


class AccessKeyRow(Base):
    __tablename__ = "access_keys"

    key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    secret_ct: Mapped[bytes] = mapped_column(LargeBinary)
    secret_nonce: Mapped[bytes] = mapped_column(LargeBinary)
    state: Mapped[str] = mapped_column(String(16))
    can_create_buckets: Mapped[bool] = mapped_column(Boolean)
    is_admin: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class BucketGrantRow(Base):
    """What one key may do in one bucket; no row means nothing (deny by default)."""

    __tablename__ = "bucket_grants"

    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id"), primary_key=True)
    key_id: Mapped[str] = mapped_column(
        ForeignKey("access_keys.key_id", ondelete="CASCADE"), primary_key=True, index=True
    )
    can_read: Mapped[bool] = mapped_column(Boolean)
    can_write: Mapped[bool] = mapped_column(Boolean)
    is_owner: Mapped[bool] = mapped_column(Boolean)


class SecretsCheckRow(Base):
    __tablename__ = "secrets_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
