"""What a gateway needs before it can check a signature: its master key, proven to be the one
the database's secrets were sealed under, and the root key.

The root key comes from ``DISTSTORAGE_ROOT_ACCESS_KEY`` / ``DISTSTORAGE_ROOT_SECRET_KEY``, else
from ``--root-credentials-file``, else from ``root-credentials`` in the data folder, generated
there (mode 0600) on the first start. It is never stored in the database. Gateways that share
a database must be given the same root key (the environment or a file), or each has its own.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from diststorage.core.credentials import (
    Credentials,
    new_credentials,
    read_credentials_file,
    write_credentials_file,
)
from diststorage.core.errors import InvalidRequest, MasterKeyError
from diststorage.core.secrets import MasterKey, load_master_key, load_or_create_master_key
from diststorage.core.settings import ROOT_ACCESS_KEY_ENV, ROOT_SECRET_KEY_ENV, GatewaySettings
from diststorage.meta import AccountStore

log = logging.getLogger(__name__)

_CHECK_CONTEXT = "secrets-check"
_CHECK_PLAINTEXT = b"diststorage master key check"


@dataclass(frozen=True, slots=True)
class RootKey:
    credentials: Credentials
    source: str  # where it came from, for the log


def load_root_key(settings: GatewaySettings) -> RootKey:
    """The root key (see the module docstring); generates one on first use when none is given.

    Blocks (file I/O). Raises InvalidRequest when only half of it is in the environment or a
    credentials file is malformed, OSError when a given file cannot be read."""
    key_id, secret = settings.root_access_key, settings.root_secret_key
    if key_id is not None or secret is not None:
        if key_id is None or secret is None:
            raise InvalidRequest(f"set both {ROOT_ACCESS_KEY_ENV} and {ROOT_SECRET_KEY_ENV}")
        return RootKey(Credentials(key_id, secret.get_secret_value()), "the environment")
    if settings.root_credentials_file is not None:
        path = settings.root_credentials_file
        return RootKey(read_credentials_file(path), str(path))
    path = settings.generated_root_credentials_path
    if path.exists():
        return RootKey(read_credentials_file(path), str(path))
    credentials = new_credentials()
    write_credentials_file(path, credentials)
    return RootKey(credentials, f"{path} (generated now)")


async def open_master_key(settings: GatewaySettings, accounts: AccountStore) -> MasterKey:
    """The master key, checked against the database: the first gateway to start on a
    database leaves a value sealed under its key there, and every later one must open it.

    The default file (``secrets.key`` in the data folder) is created when absent; a file named
    by ``--secrets-key-file`` must exist. Raises MasterKeyError, saying what to fix."""
    path = settings.secrets_key_path
    if settings.secrets_key_file is None:
        master = await asyncio.to_thread(load_or_create_master_key, path)
    else:
        master = await asyncio.to_thread(load_master_key, path)
    log.info("access-key secrets are sealed under the master key in %s", path)
    stored = await accounts.secrets_check(master.seal(_CHECK_PLAINTEXT, _CHECK_CONTEXT))
    try:
        if master.open(stored, _CHECK_CONTEXT) == _CHECK_PLAINTEXT:
            return master
    except MasterKeyError:
        pass
    raise MasterKeyError(
        f"the secrets key file {path} is not the master key this metadata database's "
        "access-key secrets were sealed under: give the gateway that file (--secrets-key-file)"
    )


def log_root_key(root: RootKey) -> None:
    """Names the root key's id and where it came from; never its secret."""
    log.info("root access key %s (from %s)", root.credentials.access_key_id, root.source)
