"""Plain records of access keys, buckets and grants, as the account store hands them out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from diststorage.core.secrets import Sealed
from diststorage.meta.states import KeyState


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """An access key as an operator may see it: everything but its secret."""

    key_id: str
    name: str
    state: KeyState
    can_create_buckets: bool
    is_admin: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredKey:
    """An access key with its secret still sealed (see ``core.secrets``)."""

    info: KeyInfo
    sealed: Sealed


@dataclass(frozen=True, slots=True)
class BucketInfo:
    name: str
    # None for the buckets from before accounts (``default``): no key created them.
    created_at: datetime | None
    owner_key_id: str | None


@dataclass(frozen=True, slots=True)
class Grant:
    """What one key may do in one bucket; every right off means no grant at all."""

    bucket: str
    key_id: str
    read: bool = False
    write: bool = False
    owner: bool = False

    @property
    def any(self) -> bool:
        return self.read or self.write or self.owner
