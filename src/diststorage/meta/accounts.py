"""What authentication and the admin routes ask of the database: access keys, buckets and the
grants between them (S3.md §2, Garage's model). Same contract as the metadata store: one
operation per method, run under a deadline, foreign errors translated (see base).

Buckets are the ``namespaces`` rows; the native API's ``default`` is one of them. Secrets come
in and go out sealed: this store never sees a secret in the clear, nor the master key.
"""

from __future__ import annotations

from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from diststorage.core.errors import (
    AlreadyExists,
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidRequest,
    KeyNotFound,
    NoSuchBucket,
)
from diststorage.core.secrets import Sealed
from diststorage.meta.account_models import AccessKeyRow, BucketGrantRow, SecretsCheckRow
from diststorage.meta.account_records import BucketInfo, Grant, KeyInfo, StoredKey
from diststorage.meta.base import StoreBase, insert_ignoring_duplicates, utc
from diststorage.meta.bucket_names import check_bucket_name
from diststorage.meta.models import Namespace, ObjectRow
from diststorage.meta.multipart_models import MultipartUpload, UploadPart
from diststorage.meta.states import DEFAULT_NAMESPACE, KeyState, ObjectState, UploadState

_SECRETS_CHECK_ID = 1


def _key_info(row: AccessKeyRow) -> KeyInfo:
    return KeyInfo(
        key_id=row.key_id,
        name=row.name,
        state=KeyState(row.state),
        can_create_buckets=row.can_create_buckets,
        is_admin=row.is_admin,
        created_at=utc(row.created_at),
    )


def _bucket_info(row: Namespace) -> BucketInfo:
    created = None if row.created_at is None else utc(row.created_at)
    return BucketInfo(name=row.name, created_at=created, owner_key_id=row.owner_key_id)


def _grant(bucket: str, row: BucketGrantRow) -> Grant:
    return Grant(bucket, row.key_id, row.can_read, row.can_write, row.is_owner)


def _key_row(session: Session, key_id: str) -> AccessKeyRow:
    row = session.get(AccessKeyRow, key_id)
    if row is None:
        raise KeyNotFound(f"no access key {key_id!r}")
    return row


def _bucket_row(session: Session, name: str) -> Namespace:
    row = session.scalar(select(Namespace).where(Namespace.name == name))
    if row is None:
        raise NoSuchBucket(f"no bucket {name!r}")
    return row


class AccountStore(StoreBase):
    # -- access keys -------------------------------------------------------------------------

    async def create_key(
        self, key_id: str, name: str, sealed: Sealed, can_create_buckets: bool, is_admin: bool
    ) -> KeyInfo:
        """Stores a new, active key; raises AlreadyExists for an id in use."""
        row = AccessKeyRow(
            key_id=key_id,
            name=name,
            secret_ct=sealed.ciphertext,
            secret_nonce=sealed.nonce,
            state=KeyState.ACTIVE,
            can_create_buckets=can_create_buckets,
            is_admin=is_admin,
            created_at=self._now(),
        )

        def operation(session: Session) -> KeyInfo:
            session.add(row)
            session.flush()
            return _key_info(row)

        try:
            return await self._write(operation)
        except IntegrityError as exc:
            raise AlreadyExists(f"an access key {key_id!r} exists already") from exc

    async def get_key(self, key_id: str) -> StoredKey:
        """The key with its sealed secret; raises KeyNotFound."""

        def operation(session: Session) -> StoredKey:
            row = _key_row(session, key_id)
            return StoredKey(_key_info(row), Sealed(row.secret_ct, row.secret_nonce))

        return await self._read(operation)

    async def list_keys(self) -> list[KeyInfo]:
        def operation(session: Session) -> list[KeyInfo]:
            rows = session.scalars(select(AccessKeyRow).order_by(AccessKeyRow.created_at))
            return [_key_info(r) for r in rows]

        return await self._read(operation)

    async def set_key_state(self, key_id: str, state: KeyState) -> KeyInfo:
        return await self._update_key(key_id, state=state)

    async def set_key_flags(
        self, key_id: str, can_create_buckets: bool | None = None, is_admin: bool | None = None
    ) -> KeyInfo:
        """Changes the flags given (None leaves one as it is); raises KeyNotFound."""
        values = {"can_create_buckets": can_create_buckets, "is_admin": is_admin}
        return await self._update_key(key_id, **values)

    async def _update_key(self, key_id: str, **values: object) -> KeyInfo:
        given = {name: value for name, value in values.items() if value is not None}

        def operation(session: Session) -> KeyInfo:
            row = _key_row(session, key_id)
            for name, value in given.items():
                setattr(row, name, value)
            session.flush()
            return _key_info(row)

        return await self._write(operation)

    async def delete_key(self, key_id: str) -> None:
        """Forgets the key and its grants; raises KeyNotFound. Buckets it owns stay."""

        def operation(session: Session) -> None:
            session.delete(_key_row(session, key_id))
            session.execute(delete(BucketGrantRow).where(BucketGrantRow.key_id == key_id))

        await self._write(operation)

    # -- buckets -----------------------------------------------------------------------------

    async def create_bucket(self, name: str, owner_key_id: str | None) -> BucketInfo:
        """Makes a bucket owned by ``owner_key_id`` and, in the same transaction, gives that
        key read, write and owner on it (a key that is not stored, the root key, needs no
        grant). Raises InvalidBucketName, BucketAlreadyOwnedByYou when the name is taken by
        a bucket of the same owner, BucketAlreadyExists when by any other."""
        check_bucket_name(name)

        def operation(session: Session) -> BucketInfo:
            _refuse_taken(session, name, owner_key_id)
            row = Namespace(name=name, created_at=self._now(), owner_key_id=owner_key_id)
            session.add(row)
            session.flush()
            if owner_key_id is not None and session.get(AccessKeyRow, owner_key_id) is not None:
                session.add(
                    BucketGrantRow(
                        namespace_id=row.id,
                        key_id=owner_key_id,
                        can_read=True,
                        can_write=True,
                        is_owner=True,
                    )
                )
            return _bucket_info(row)

        try:
            return await self._write(operation)
        except IntegrityError as exc:
            # Created by another gateway between the check and the insert.
            await self._read(lambda session: _refuse_taken(session, name, owner_key_id))
            raise BucketAlreadyExists(f"the bucket {name!r} exists already") from exc

    async def get_bucket(self, name: str) -> BucketInfo:
        """Raises NoSuchBucket."""
        return await self._read(lambda session: _bucket_info(_bucket_row(session, name)))

    async def list_buckets(self, key_id: str | None = None) -> list[BucketInfo]:
        """Every bucket (``key_id`` None), or those on which the key holds any grant; by name."""

        def operation(session: Session) -> list[BucketInfo]:
            query = select(Namespace).order_by(Namespace.name)
            if key_id is not None:
                query = query.join(
                    BucketGrantRow, BucketGrantRow.namespace_id == Namespace.id
                ).where(BucketGrantRow.key_id == key_id)
            return [_bucket_info(r) for r in session.scalars(query)]

        return await self._read(operation)

    async def delete_bucket(self, name: str) -> None:
        """Removes an empty bucket, its grants and the records of its finished multipart
        uploads. Raises NoSuchBucket; BucketNotEmpty while it holds a committed object, an
        upload is still writing into it or a multipart upload is open; InvalidRequest for
        ``default``, where the native API keeps its objects."""
        if name == DEFAULT_NAMESPACE:
            raise InvalidRequest(f"the bucket {name!r} holds the native API's objects: it stays")

        def operation(session: Session) -> None:
            row = _bucket_row(session, name)
            _refuse_not_empty(session, row)
            session.execute(delete(BucketGrantRow).where(BucketGrantRow.namespace_id == row.id))
            _forget_finished_uploads(session, row)
            session.delete(row)

        await self._write(operation)

    # -- grants ------------------------------------------------------------------------------

    async def set_grant(
        self, bucket: str, key_id: str, read: bool, write: bool, owner: bool
    ) -> Grant:
        """Sets exactly these rights of the key on the bucket; all three off removes the
        grant. Raises NoSuchBucket, KeyNotFound."""
        grant = Grant(bucket, key_id, read, write, owner)

        def operation(session: Session) -> Grant:
            namespace_id = _bucket_row(session, bucket).id
            _key_row(session, key_id)
            session.execute(
                delete(BucketGrantRow).where(
                    BucketGrantRow.namespace_id == namespace_id, BucketGrantRow.key_id == key_id
                )
            )
            if grant.any:
                session.add(
                    BucketGrantRow(
                        namespace_id=namespace_id,
                        key_id=key_id,
                        can_read=read,
                        can_write=write,
                        is_owner=owner,
                    )
                )
            return grant

        return await self._write(operation)

    async def remove_grant(self, bucket: str, key_id: str) -> None:
        """Raises NoSuchBucket, KeyNotFound; a key without a grant is left as it is."""
        await self.set_grant(bucket, key_id, read=False, write=False, owner=False)

    async def grants_of_bucket(self, bucket: str) -> list[Grant]:
        """Raises NoSuchBucket."""

        def operation(session: Session) -> list[Grant]:
            namespace_id = _bucket_row(session, bucket).id
            rows = session.scalars(
                select(BucketGrantRow)
                .where(BucketGrantRow.namespace_id == namespace_id)
                .order_by(BucketGrantRow.key_id)
            )
            return [_grant(bucket, r) for r in rows]

        return await self._read(operation)

    async def grant_of(self, key_id: str, bucket: str) -> Grant:
        """The key's rights on the bucket, every one off without a grant (or for a key that
        is not stored). Raises NoSuchBucket."""

        def operation(session: Session) -> Grant:
            namespace_id = _bucket_row(session, bucket).id
            row = session.get(BucketGrantRow, (namespace_id, key_id))
            return Grant(bucket, key_id) if row is None else _grant(bucket, row)

        return await self._read(operation)

    # -- the master key's check value --------------------------------------------------------

    async def secrets_check(self, candidate: Sealed) -> Sealed:
        """The check value sealed under the database's master key: ``candidate`` (sealed
        under the caller's) when the database has none yet, which it then keeps."""

        def operation(session: Session) -> Sealed:
            session.execute(
                insert_ignoring_duplicates(session, SecretsCheckRow),
                [
                    {
                        "id": _SECRETS_CHECK_ID,
                        "sealed": candidate.ciphertext,
                        "nonce": candidate.nonce,
                    }
                ],
            )
            row = session.get(SecretsCheckRow, _SECRETS_CHECK_ID)
            assert row is not None
            return Sealed(row.sealed, row.nonce)

        return await self._write(operation)


def _refuse_taken(session: Session, name: str, owner_key_id: str | None) -> None:
    owner = session.execute(
        select(Namespace.owner_key_id).where(Namespace.name == name)
    ).one_or_none()
    if owner is None:
        return
    if owner_key_id is not None and owner[0] == owner_key_id:
        raise BucketAlreadyOwnedByYou(f"you own the bucket {name!r} already")
    raise BucketAlreadyExists(f"the bucket {name!r} exists already")


def _forget_finished_uploads(session: Session, row: Namespace) -> None:
    """What is kept of completed and aborted uploads (for a retried Complete or Abort) goes
    with their bucket; no open one is left (``_refuse_not_empty``)."""
    uploads = select(MultipartUpload.upload_id).where(MultipartUpload.namespace_id == row.id)
    session.execute(delete(UploadPart).where(UploadPart.upload_id.in_(uploads)))
    session.execute(delete(MultipartUpload).where(MultipartUpload.namespace_id == row.id))


def _refuse_not_empty(session: Session, row: Namespace) -> None:
    in_bucket = ObjectRow.namespace_id == row.id
    if session.scalar(select(exists().where(in_bucket, ObjectRow.state == ObjectState.COMMITTED))):
        raise BucketNotEmpty(f"the bucket {row.name!r} holds objects: delete them first")
    if session.scalar(select(exists().where(in_bucket))):
        raise BucketNotEmpty(
            f"uploads into the bucket {row.name!r} are still running (or were cut off and "
            "wait for garbage collection): try again later"
        )
    open_upload = (MultipartUpload.namespace_id == row.id) & (
        MultipartUpload.state == UploadState.OPEN
    )
    if session.scalar(select(exists().where(open_upload))):
        raise BucketNotEmpty(
            f"multipart uploads into the bucket {row.name!r} are open: abort them first"
        )
