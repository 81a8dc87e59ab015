"""Tables of multipart uploads: the uploads, their parts, and the parts of completed objects.

A part is an ``objects`` row in state ``part`` with its own geometry and chunks (see
``ObjectState``). ``upload_parts`` says which part row holds each part number of an open upload;
``object_parts`` says, for an object completed from parts, which part rows hold its bytes and
where each starts. Completing moves a part from the first table to the second: no bytes move.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from diststorage.meta.models import Base


class MultipartUpload(Base):
    """One multipart upload: ``open``, then ``completed`` or ``aborted`` (``UploadState``).

    A finished row is kept a day with the result, so that a retried Complete gets the same
    answer. ``last_activity_at`` (creation, each part, the end) drives expiry: idle time, not
    age, so an upload that goes on for days is not cut off.
    """

    __tablename__ = "multipart_uploads"
    __table_args__ = (
        # ListMultipartUploads: a namespace's uploads in (key, upload id) order.
        Index(
            "ix_multipart_uploads_namespace_id_key_upload_id", "namespace_id", "key", "upload_id"
        ),
        # Expiry: open uploads idle the longest, finished ones kept the longest.
        Index("ix_multipart_uploads_state_last_activity_at", "state", "last_activity_at"),
    )

    upload_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    namespace_id: Mapped[int] = mapped_column(ForeignKey("namespaces.id"))
    key: Mapped[bytes] = mapped_column(LargeBinary(1024))
    state: Mapped[str] = mapped_column(String(16))
    initiated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_activity_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # Who created it (an access key id), for ListMultipartUploads' Initiator; None without auth.
    initiator_key: Mapped[str | None] = mapped_column(String(128), nullable=True)
    content_type: Mapped[str] = mapped_column(String(255))
    # The completed object's ObjectAttributes (user metadata, representation headers) as
    # objects.attrs keeps them.
    attrs: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The flexible checksum asked for at creation: algorithm, COMPOSITE or FULL_OBJECT.
    checksum_algo: Mapped[str | None] = mapped_column(String(16), nullable=True)
    checksum_type: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # Once completed: what a retried Complete answers. No foreign key: the object may be
    # deleted or replaced while the answer is kept.
    final_object_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    final_etag: Mapped[str | None] = mapped_column(String(48), nullable=True)
    final_size_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    final_checksum: Mapped[str | None] = mapped_column(String(128), nullable=True)


class UploadPart(Base):
    """The part row that holds part ``part_number`` of an open upload: its latest upload."""

    __tablename__ = "upload_parts"
    __table_args__ = (
        # Deleting an object row checks that no part points at it: without an index, that
        # check would scan this table on every delete.
        Index("ix_upload_parts_part_object_id", "part_object_id", unique=True),
    )

    upload_id: Mapped[str] = mapped_column(
        ForeignKey("multipart_uploads.upload_id", ondelete="CASCADE"), primary_key=True
    )
    part_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    part_object_id: Mapped[str] = mapped_column(ForeignKey("objects.id"))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    md5_hex: Mapped[str] = mapped_column(String(32))
    # The flexible checksum the part came with (base64), if any.
    checksum_algo: Mapped[str | None] = mapped_column(String(16), nullable=True)
    checksum_value: Mapped[str | None] = mapped_column(String(128), nullable=True)
    uploaded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ObjectPart(Base):
    """Part ``part_index`` (0-based, in the completed order) of a committed object: the part
    row holding its bytes, which start at ``offset_bytes`` of the object."""

    __tablename__ = "object_parts"
    __table_args__ = (Index("ix_object_parts_part_object_id", "part_object_id", unique=True),)

    object_id: Mapped[str] = mapped_column(
        ForeignKey("objects.id", ondelete="CASCADE"), primary_key=True
    )
    part_index: Mapped[int] = mapped_column(Integer, primary_key=True)
    # No cascade: a part row must not vanish under the object it holds bytes of.
    part_object_id: Mapped[str] = mapped_column(ForeignKey("objects.id"))
    offset_bytes: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)


MULTIPART_UPLOADS = Base.metadata.tables[MultipartUpload.__tablename__]
UPLOAD_PARTS = Base.metadata.tables[UploadPart.__tablename__]
OBJECT_PARTS = Base.metadata.tables[ObjectPart.__tablename__]
