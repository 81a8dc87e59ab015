"""The key cache and the operator's changes through Accounts, over a real SQLite store and in
virtual time: what a gateway believes of a key or a grant, and for how long."""

from __future__ import annotations

import pytest

from diststorage.core.credentials import Credentials
from diststorage.core.errors import KeyNotFound, NoSuchBucket
from diststorage.gateway.auth.accounts import Accounts, Rights
from diststorage.gateway.auth.keys import KeyCache
from diststorage.meta import Grant, KeyState, MetadataStore
from diststorage.testing import FakeClock, make_accounts

ROOT = Credentials("DSROOTFORTHETESTS000", "root-secret-for-tests")
TTL_S = 5.0


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def accounts(sqlite_store: MetadataStore, clock: FakeClock) -> Accounts:
    return make_accounts(sqlite_store, ROOT, TTL_S, clock)


def other_gateway(store: MetadataStore, accounts: Accounts, clock: FakeClock) -> Accounts:
    """A second gateway's view of the same database (its own cache, the same master key)."""
    return Accounts(
        store.accounts,
        accounts.master,
        KeyCache(store.accounts, accounts.master, ROOT, TTL_S, clock),
    )


async def test_the_root_key_is_known_without_the_database(accounts: Accounts) -> None:
    root = await accounts.keys.key(ROOT.access_key_id)
    assert root is not None and root.active
    assert root.secret == ROOT.secret_access_key
    assert root.principal.is_admin and root.principal.can_create_buckets
    assert root.principal.name == "root"
    assert await accounts.store.list_keys() == []


async def test_a_new_key_opens_to_its_secret_and_flags(accounts: Accounts) -> None:
    new = await accounts.create_key("backup", can_create_buckets=False)
    assert new.secret not in repr(new)
    known = await accounts.keys.key(new.info.key_id)
    assert known is not None and known.active and known.secret == new.secret
    assert known.principal.name == "backup"
    assert not known.principal.can_create_buckets and not known.principal.is_admin
    assert new.secret not in repr(known)
    assert await accounts.keys.key("DSNOSUCHKEY00000000") is None


async def test_a_change_elsewhere_is_seen_once_the_ttl_passes(
    sqlite_store: MetadataStore, accounts: Accounts, clock: FakeClock
) -> None:
    elsewhere = other_gateway(sqlite_store, accounts, clock)
    key_id = (await accounts.create_key("k")).info.key_id
    await accounts.create_bucket("shared", ROOT.access_key_id)
    await accounts.allow("shared", key_id, Rights(read=True, write=True))
    seen = await elsewhere.keys.key(key_id)
    assert seen is not None and seen.active
    assert (await elsewhere.keys.grant(key_id, "shared")).write
    await accounts.set_key_state(key_id, KeyState.DISABLED)
    await accounts.deny("shared", key_id, Rights(write=True))
    here = await accounts.keys.key(key_id)
    assert here is not None and not here.active, "the gateway that made the change knows at once"
    clock.now += TTL_S - 0.1
    stale = await elsewhere.keys.key(key_id)
    assert stale is not None and stale.active
    clock.now += 0.2
    fresh = await elsewhere.keys.key(key_id)
    assert fresh is not None and not fresh.active
    assert await elsewhere.keys.grant(key_id, "shared") == Grant("shared", key_id, read=True)


async def test_a_missing_bucket_and_an_unknown_key_are_remembered_too(
    sqlite_store: MetadataStore, accounts: Accounts, clock: FakeClock
) -> None:
    elsewhere = other_gateway(sqlite_store, accounts, clock)
    with pytest.raises(NoSuchBucket):
        await elsewhere.keys.grant("DSANYKEY", "later")
    await accounts.create_bucket("later", None)
    with pytest.raises(NoSuchBucket):
        await elsewhere.keys.grant("DSANYKEY", "later")
    clock.now += TTL_S
    assert not (await elsewhere.keys.grant("DSANYKEY", "later")).any
    assert await accounts.keys.key("DSNOTYET") is None


async def test_the_cache_is_bounded(sqlite_store: MetadataStore, clock: FakeClock) -> None:
    accounts = make_accounts(sqlite_store, ROOT, TTL_S, clock)
    small = KeyCache(sqlite_store.accounts, accounts.master, ROOT, TTL_S, clock, 3)
    for index in range(10):
        assert await small.key(f"DSUNKNOWN{index}") is None
    assert small.cached_entries <= 3


async def test_allow_adds_rights_and_deny_takes_them(accounts: Accounts) -> None:
    key_id = (await accounts.create_key("k")).info.key_id
    await accounts.create_bucket("b-1", None)
    assert await accounts.allow("b-1", key_id, Rights(read=True)) == Grant("b-1", key_id, True)
    granted = await accounts.allow("b-1", key_id, Rights(write=True, owner=True))
    assert granted == Grant("b-1", key_id, True, True, True)
    assert await accounts.deny("b-1", key_id, Rights(owner=True)) == Grant(
        "b-1", key_id, True, True
    )
    assert await accounts.deny("b-1", key_id, Rights()) == Grant("b-1", key_id)
    assert await accounts.store.grants_of_bucket("b-1") == []
    with pytest.raises(KeyNotFound):
        await accounts.allow("b-1", "DSNOSUCHKEY", Rights(read=True))
    with pytest.raises(KeyNotFound):
        await accounts.create_bucket("b-2", "DSNOSUCHKEY")


async def test_a_bucket_created_by_a_key_is_its_owners(accounts: Accounts) -> None:
    key_id = (await accounts.create_key("k")).info.key_id
    await accounts.create_bucket("mine", key_id)
    assert await accounts.keys.grant(key_id, "mine") == Grant("mine", key_id, True, True, True)
    await accounts.delete_key(key_id)
    assert await accounts.keys.key(key_id) is None
