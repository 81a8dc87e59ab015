"""The accounts contract (access keys, buckets, grants, the master key's check value): the same
suite against SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from diststorage.core.credentials import new_access_key_id
from diststorage.core.errors import (
    AlreadyExists,
    BucketAlreadyExists,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidBucketName,
    InvalidRequest,
    KeyNotFound,
    NoSuchBucket,
    NoSuchUpload,
    ObjectNotFound,
)
from diststorage.core.ids import new_id
from diststorage.core.secrets import Sealed
from diststorage.meta import (
    NO_ATTRIBUTES,
    AccountStore,
    Grant,
    KeyState,
    MetadataStore,
    NewObject,
    NewUpload,
)

SEALED = Sealed(b"ciphertext-and-tag", b"twelve-bytes")


@pytest.fixture
def accounts(store: MetadataStore) -> AccountStore:
    return store.accounts


async def _key(accounts: AccountStore, name: str = "k", **flags: bool) -> str:
    key_id = new_access_key_id()
    await accounts.create_key(
        key_id,
        name,
        SEALED,
        can_create_buckets=flags.get("can_create_buckets", True),
        is_admin=flags.get("is_admin", False),
    )
    return key_id


async def _put_inline(store: MetadataStore, bucket: str, key: str) -> None:
    new = NewObject(new_id(), bucket, key, "text/plain", "inline", 4096, 8, new_id())
    await store.commit_inline(new, b"abc", "0" * 32, replace=True)


async def test_a_key_keeps_its_sealed_secret_and_flags(accounts: AccountStore) -> None:
    key_id = await _key(accounts, "backup", can_create_buckets=False, is_admin=True)
    stored = await accounts.get_key(key_id)
    assert stored.sealed == SEALED
    info = stored.info
    assert (info.key_id, info.name, info.state) == (key_id, "backup", KeyState.ACTIVE)
    assert (info.can_create_buckets, info.is_admin) == (False, True)
    assert info.created_at.tzinfo is not None
    assert [k.key_id for k in await accounts.list_keys()] == [key_id]
    with pytest.raises(AlreadyExists):
        await accounts.create_key(key_id, "again", SEALED, True, False)


async def test_keys_are_disabled_enabled_flagged_and_deleted(accounts: AccountStore) -> None:
    key_id = await _key(accounts)
    assert (await accounts.set_key_state(key_id, KeyState.DISABLED)).state == KeyState.DISABLED
    assert (await accounts.get_key(key_id)).info.state == KeyState.DISABLED
    assert (await accounts.set_key_state(key_id, KeyState.ACTIVE)).state == KeyState.ACTIVE
    flagged = await accounts.set_key_flags(key_id, is_admin=True)
    assert (flagged.is_admin, flagged.can_create_buckets) == (True, True)
    flagged = await accounts.set_key_flags(key_id, can_create_buckets=False)
    assert (flagged.is_admin, flagged.can_create_buckets) == (True, False)
    await accounts.delete_key(key_id)
    for call in (
        accounts.get_key(key_id),
        accounts.delete_key(key_id),
        accounts.set_key_state(key_id, KeyState.ACTIVE),
    ):
        with pytest.raises(KeyNotFound):
            await call


async def test_creating_a_bucket_gives_its_owner_every_right(accounts: AccountStore) -> None:
    owner = await _key(accounts)
    bucket = await accounts.create_bucket("photos", owner)
    assert (bucket.name, bucket.owner_key_id) == ("photos", owner)
    assert bucket.created_at is not None
    assert await accounts.get_bucket("photos") == bucket
    assert await accounts.grant_of(owner, "photos") == Grant("photos", owner, True, True, True)
    assert await accounts.grants_of_bucket("photos") == [Grant("photos", owner, True, True, True)]
    with pytest.raises(BucketAlreadyOwnedByYou):
        await accounts.create_bucket("photos", owner)
    with pytest.raises(BucketAlreadyExists):
        await accounts.create_bucket("photos", await _key(accounts))
    with pytest.raises(BucketAlreadyExists):
        await accounts.create_bucket("photos", None)


async def test_an_unstored_owner_the_root_key_gets_no_grant(accounts: AccountStore) -> None:
    bucket = await accounts.create_bucket("rooted", "ROOTKEYNOTINTHEDB")
    assert bucket.owner_key_id == "ROOTKEYNOTINTHEDB"
    assert await accounts.grants_of_bucket("rooted") == []
    with pytest.raises(BucketAlreadyOwnedByYou):
        await accounts.create_bucket("rooted", "ROOTKEYNOTINTHEDB")


async def test_bucket_names_are_checked(accounts: AccountStore) -> None:
    for bad in ("ab", "Photos", "a..b", "192.168.1.1", "xn--abc", "x-s3alias", "-abc"):
        with pytest.raises(InvalidBucketName):
            await accounts.create_bucket(bad, None)
    assert await accounts.list_buckets() == [await accounts.get_bucket("default")]


async def test_default_is_a_bucket_from_the_start_and_stays(accounts: AccountStore) -> None:
    default = await accounts.get_bucket("default")
    assert default.owner_key_id is None
    assert default.created_at is not None, "the migration dates the buckets it finds"
    with pytest.raises(InvalidRequest):
        await accounts.delete_bucket("default")


async def test_listing_shows_all_buckets_or_those_a_key_may_use(accounts: AccountStore) -> None:
    alice, bob, carol = await _key(accounts), await _key(accounts), await _key(accounts)
    await accounts.create_bucket("alice-1", alice)
    await accounts.create_bucket("alice-2", alice)
    await accounts.create_bucket("bob-1", bob)
    await accounts.set_grant("alice-2", bob, read=True, write=False, owner=False)
    names = [b.name for b in await accounts.list_buckets()]
    assert names == ["alice-1", "alice-2", "bob-1", "default"]
    assert [b.name for b in await accounts.list_buckets(alice)] == ["alice-1", "alice-2"]
    assert [b.name for b in await accounts.list_buckets(bob)] == ["alice-2", "bob-1"]
    assert await accounts.list_buckets(carol) == []


async def test_grants_are_set_exactly_and_removed(accounts: AccountStore) -> None:
    owner, reader = await _key(accounts), await _key(accounts)
    await accounts.create_bucket("shared", owner)
    assert await accounts.grant_of(reader, "shared") == Grant("shared", reader)
    granted = await accounts.set_grant("shared", reader, read=True, write=False, owner=False)
    assert granted == await accounts.grant_of(reader, "shared") == Grant("shared", reader, True)
    await accounts.set_grant("shared", reader, read=False, write=True, owner=False)
    assert await accounts.grant_of(reader, "shared") == Grant("shared", reader, write=True)
    await accounts.set_grant("shared", reader, read=False, write=False, owner=False)
    assert [g.key_id for g in await accounts.grants_of_bucket("shared")] == [owner]
    await accounts.set_grant("shared", reader, read=True, write=True, owner=True)
    await accounts.remove_grant("shared", reader)
    assert not (await accounts.grant_of(reader, "shared")).any
    with pytest.raises(NoSuchBucket):
        await accounts.set_grant("nowhere", reader, read=True, write=False, owner=False)
    with pytest.raises(KeyNotFound):
        await accounts.set_grant("shared", "DSNOSUCHKEY", read=True, write=False, owner=False)
    with pytest.raises(NoSuchBucket):
        await accounts.grant_of(reader, "nowhere")


async def test_a_deleted_key_takes_its_grants_and_leaves_its_buckets(
    accounts: AccountStore,
) -> None:
    owner = await _key(accounts)
    await accounts.create_bucket("orphaned", owner)
    await accounts.delete_key(owner)
    assert await accounts.grants_of_bucket("orphaned") == []
    assert (await accounts.get_bucket("orphaned")).owner_key_id == owner


async def test_only_an_empty_bucket_is_deleted(store: MetadataStore) -> None:
    accounts = store.accounts
    owner = await _key(accounts)
    await accounts.create_bucket("full", owner)
    await _put_inline(store, "full", "a")
    with pytest.raises(BucketNotEmpty):
        await accounts.delete_bucket("full")
    await store.delete_object("full", "a")
    await accounts.delete_bucket("full")
    with pytest.raises(NoSuchBucket):
        await accounts.get_bucket("full")
    with pytest.raises(NoSuchBucket):
        await accounts.delete_bucket("full")
    assert await accounts.list_buckets(owner) == []


async def test_a_bucket_made_again_is_a_new_one(store: MetadataStore) -> None:
    """Its objects are gone with it, and this gateway writes into the new one, not the old."""
    accounts = store.accounts
    await accounts.create_bucket("again", None)
    await _put_inline(store, "again", "a")
    await store.delete_object("again", "a")
    await accounts.delete_bucket("again")
    await accounts.create_bucket("again", None)
    with pytest.raises(ObjectNotFound):
        await store.get_info("again", "a")
    await _put_inline(store, "again", "b")
    assert [o.key for o in (await store.list_objects("again")).objects] == ["b"]


async def test_the_first_check_value_is_kept(accounts: AccountStore) -> None:
    first = Sealed(b"first", b"n1")
    assert await accounts.secrets_check(first) == first
    assert await accounts.secrets_check(Sealed(b"second", b"n2")) == first


async def test_a_bucket_with_an_open_upload_stays_and_finished_ones_go_with_it(
    store: MetadataStore,
) -> None:
    """Completed and aborted uploads leave records behind (for retries); they do not keep
    their bucket, an open one does."""
    accounts = store.accounts
    await accounts.create_bucket("uploads", None)
    open_id = new_id()
    await store.multipart.create_upload(
        NewUpload(open_id, "uploads", "k", "text/plain", NO_ATTRIBUTES)
    )
    with pytest.raises(BucketNotEmpty):
        await accounts.delete_bucket("uploads")
    await store.multipart.abort(open_id, "uploads", "k")
    await accounts.delete_bucket("uploads")
    with pytest.raises(NoSuchBucket):
        await accounts.get_bucket("uploads")
    await accounts.create_bucket("uploads", None)
    with pytest.raises(NoSuchUpload):
        await store.multipart.open_upload(open_id, "uploads", "k")
