"""Accounts for in-process tests: a fresh master key, a known root key, a key cache over a
real metadata store (the same parts the gateway builds, never a fake of them)."""

from __future__ import annotations

import secrets

from diststorage.core.clock import SYSTEM_CLOCK, Clock
from diststorage.core.credentials import Credentials, new_credentials
from diststorage.core.secrets import MASTER_KEY_BYTES, MasterKey
from diststorage.gateway.auth.accounts import Accounts
from diststorage.gateway.auth.keys import KeyCache
from diststorage.meta import MetadataStore


def make_accounts(
    store: MetadataStore,
    root: Credentials | None = None,
    ttl_s: float = 5.0,
    clock: Clock = SYSTEM_CLOCK,
) -> Accounts:
    """Accounts over ``store`` whose root key is ``root`` (default: a new one, see
    ``accounts.keys.root_key_id``)."""
    master = MasterKey(secrets.token_bytes(MASTER_KEY_BYTES))
    keys = KeyCache(store.accounts, master, root or new_credentials(), ttl_s, clock)
    return Accounts(store.accounts, master, keys)
