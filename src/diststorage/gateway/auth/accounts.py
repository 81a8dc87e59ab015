"""The operator's changes to keys, buckets and grants: what the admin routes call.

Over the account store, this adds what needs the gateway: a new key's id and secret, sealed
under the master key before it is stored; the rights an ``allow`` or ``deny`` leaves; and
forgetting at once, in this gateway's key cache, whatever a change made stale (other gateways
notice within their cache's time to live).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diststorage.core.credentials import new_access_key_id, new_secret
from diststorage.core.errors import AlreadyExists, InvalidRequest
from diststorage.core.secrets import MasterKey
from diststorage.gateway.auth.keys import KeyCache
from diststorage.meta import AccountStore, BucketInfo, Grant, KeyInfo, KeyState

MAX_NAME_CHARS = 255
# Ids are random (90 bits); a clash with a stored one is only ever a broken random source.
_ID_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just created: the only time its secret is handed out."""

    info: KeyInfo
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Rights:
    """Rights named in an ``allow`` or ``deny``."""

    read: bool = False
    write: bool = False
    owner: bool = False

    @property
    def none(self) -> bool:
        return not (self.read or self.write or self.owner)


def _check_name(name: str) -> str:
    if not 1 <= len(name) <= MAX_NAME_CHARS or not name.isprintable():
        raise InvalidRequest(f"a key's name is 1 to {MAX_NAME_CHARS} printable characters")
    return name


class Accounts:
    def __init__(self, store: AccountStore, master: MasterKey, keys: KeyCache) -> None:
        self._store = store
        self._master = master
        self._keys = keys

    @property
    def master(self) -> MasterKey:
        return self._master

    @property
    def keys(self) -> KeyCache:
        return self._keys

    @property
    def store(self) -> AccountStore:
        """For reads, which need nothing more than the store."""
        return self._store

    async def create_key(
        self, name: str, can_create_buckets: bool = True, is_admin: bool = False
    ) -> NewKey:
        _check_name(name)
        secret = new_secret()
        for attempt in range(_ID_ATTEMPTS):
            key_id = new_access_key_id()
            if key_id == self._keys.root_key_id:
                continue
            sealed = self._master.seal(secret.encode(), key_id)
            try:
                info = await self._store.create_key(
                    key_id, name, sealed, can_create_buckets, is_admin
                )
            except AlreadyExists:
                if attempt == _ID_ATTEMPTS - 1:
                    raise
                continue
            self._keys.forget_key(key_id)  # an unknown-key answer may be cached
            return NewKey(info, secret)
        raise AlreadyExists("no free access key id was drawn")

    async def set_key_state(self, key_id: str, state: KeyState) -> KeyInfo:
        info = await self._store.set_key_state(key_id, state)
        self._keys.forget_key(key_id)
        return info

    async def delete_key(self, key_id: str) -> None:
        await self._store.delete_key(key_id)
        self._keys.forget_key(key_id)

    async def create_bucket(self, name: str, owner_key_id: str | None) -> BucketInfo:
        """``owner_key_id`` must be the root key's or a stored key's (KeyNotFound else)."""
        if owner_key_id is not None and owner_key_id != self._keys.root_key_id:
            await self._store.get_key(owner_key_id)
        info = await self._store.create_bucket(name, owner_key_id)
        self._keys.forget_bucket(name)
        return info

    async def delete_bucket(self, name: str) -> None:
        await self._store.delete_bucket(name)
        self._keys.forget_bucket(name)

    async def allow(self, bucket: str, key_id: str, rights: Rights) -> Grant:
        """Adds the rights to what the key holds on the bucket."""
        held = await self._store.grant_of(key_id, bucket)
        return await self._set(
            held, held.read or rights.read, held.write or rights.write, held.owner or rights.owner
        )

    async def deny(self, bucket: str, key_id: str, rights: Rights) -> Grant:
        """Takes the rights away; naming none takes them all (the grant goes)."""
        held = await self._store.grant_of(key_id, bucket)
        if rights.none:
            return await self._set(held, False, False, False)
        return await self._set(
            held,
            held.read and not rights.read,
            held.write and not rights.write,
            held.owner and not rights.owner,
        )

    async def _set(self, held: Grant, read: bool, write: bool, owner: bool) -> Grant:
        grant = await self._store.set_grant(held.bucket, held.key_id, read, write, owner)
        self._keys.forget_key(held.key_id)
        return grant
