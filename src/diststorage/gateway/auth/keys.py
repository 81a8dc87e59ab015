"""What this gateway knows of access keys and grants, for a few seconds at a time.

Every signed request needs its key's secret and, for a bucket, the key's grant on it: reading
them from the database each time would double the statements a small GET costs. They are
kept for ``ttl_s`` (5 s by default), so that what an operator changes on any gateway (a key
disabled, a grant removed) reaches every gateway sharing the database within that time; a
change made through this gateway is forgotten here at once. Unknown keys and missing buckets
are remembered too, so a stream of bad requests costs no more than good ones. Both caches are
bounded (least recently used out first).

The root key is not in the database: it is known from the start and never expires.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from diststorage.core.clock import SYSTEM_CLOCK, Clock
from diststorage.core.credentials import Credentials
from diststorage.core.errors import KeyNotFound, NoSuchBucket
from diststorage.core.secrets import MasterKey
from diststorage.gateway.auth.ports import Principal
from diststorage.meta import AccountStore, Grant, KeyState

ROOT_NAME = "root"
MAX_CACHED = 10_000

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class KnownKey:
    """A key with its secret opened, for verifying signatures; ``active`` false when it is
    disabled (and must then be refused like an unknown one)."""

    principal: Principal
    secret: str = field(repr=False)
    active: bool


class _Expiring(Generic[K, V]):
    """A bounded map whose entries lapse ``ttl_s`` after they were put."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Clock) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        """(found, value): found false when there is no fresh entry."""
        entry = self._entries.get(key)
        if entry is None or self._clock.monotonic() >= entry[0]:
            self._entries.pop(key, None)
            return False, None
        self._entries.move_to_end(key)
        return True, entry[1]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = (self._clock.monotonic() + self._ttl_s, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> None:
        self._entries.pop(key, None)

    def drop_where(self, doomed: Callable[[K], bool]) -> None:
        for key in [k for k in self._entries if doomed(k)]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)


class KeyCache:
    def __init__(
        self,
        accounts: AccountStore,
        master: MasterKey,
        root: Credentials,
        ttl_s: float,
        clock: Clock = SYSTEM_CLOCK,
        max_entries: int = MAX_CACHED,
    ) -> None:
        self._accounts = accounts
        self._master = master
        self._root = KnownKey(
            Principal(root.access_key_id, ROOT_NAME, is_admin=True, can_create_buckets=True),
            root.secret_access_key,
            active=True,
        )
        self._keys: _Expiring[str, KnownKey | None] = _Expiring(ttl_s, max_entries, clock)
        self._grants: _Expiring[tuple[str, str], Grant | None] = _Expiring(
            ttl_s, max_entries, clock
        )

    @property
    def cached_entries(self) -> int:
        """Keys and grants held now (each of the two caches is bounded on its own)."""
        return max(len(self._keys), len(self._grants))

    @property
    def root_key_id(self) -> str:
        return self._root.principal.access_key_id

    async def key(self, key_id: str) -> KnownKey | None:
        """The key with its secret, None for a key that does not exist. Raises Unavailable
        (database) and MasterKeyError (a secret that does not open)."""
        if key_id == self.root_key_id:
            return self._root
        found, known = self._keys.get(key_id)
        if found:
            return known
        known = await self._load_key(key_id)
        self._keys.put(key_id, known)
        return known

    async def _load_key(self, key_id: str) -> KnownKey | None:
        try:
            stored = await self._accounts.get_key(key_id)
        except KeyNotFound:
            return None
        info = stored.info
        secret = self._master.open(stored.sealed, key_id).decode()
        principal = Principal(key_id, info.name, info.is_admin, info.can_create_buckets)
        return KnownKey(principal, secret, active=info.state == KeyState.ACTIVE)

    async def grant(self, key_id: str, bucket: str) -> Grant:
        """The key's rights on the bucket (all off without a grant); raises NoSuchBucket."""
        found, grant = self._grants.get((key_id, bucket))
        if not found:
            try:
                grant = await self._accounts.grant_of(key_id, bucket)
            except NoSuchBucket:
                grant = None
            self._grants.put((key_id, bucket), grant)
        if grant is None:
            raise NoSuchBucket(f"no bucket {bucket!r}")
        return grant

    def forget_key(self, key_id: str) -> None:
        """Drops what is known of the key and its grants (changed through this gateway)."""
        self._keys.pop(key_id)
        self._grants.drop_where(lambda cached: cached[0] == key_id)

    def forget_bucket(self, bucket: str) -> None:
        """Drops every grant known on the bucket (created, deleted, or a grant changed)."""
        self._grants.drop_where(lambda cached: cached[1] == bucket)
