"""Makes, once, the key material that every gateway of docker/compose.yml shares.

Gateways on one database must seal access-key secrets under one master key (each refuses to
start with a key that does not open what the first one sealed) and must agree on the root key
(a key id signed for on one gateway is checked on the other). Left to themselves, each would
generate its own into its data folder. So the compose file's ``gateway-keys`` service runs this
before any gateway starts, writing both into the volume the gateways then mount read-only:

- ``secrets.key``: the 32-byte master key (the gateways' ``--secrets-key-file``);
- ``root-credentials``: the root access key, as JSON (their ``--root-credentials-file``);
- with ``--cluster-dir``, the cluster CA (``ca.pem``, ``ca.key``, as ``diststorage cluster
  init`` writes them) into a folder of its own, a second volume: gateways and nodes alike
  mount that one (their ``DISTSTORAGE_CLUSTER_DIR``), and every gRPC link between them runs
  mutual TLS under it. Nodes never see the gateways' keys.

Files already there are kept, after the same checks a gateway makes, so the keys last as long
as the volume (``docker compose down -v`` drops them, with the database they belong to). The
service runs as root, so that it can give the files to the gateways' user (``--owner``) however
the new volume is owned; each file is mode 0600. No secret is printed, only the root key's id.

    python init_secrets.py FOLDER [--owner UID:GID] [--cluster-dir CLUSTER_FOLDER]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from diststorage.core.cluster_tls import (
    CA_CERT_FILE,
    CA_KEY_FILE,
    ClusterCredentialsError,
    init_cluster_dir,
    load_authority,
)
from diststorage.core.credentials import (
    new_credentials,
    read_credentials_file,
    write_credentials_file,
)
from diststorage.core.errors import InvalidRequest, MasterKeyError
from diststorage.core.secrets import load_or_create_master_key

MASTER_KEY_FILE = "secrets.key"
ROOT_CREDENTIALS_FILE = "root-credentials"


def owner_of(value: str) -> tuple[int, int]:
    uid, _, gid = value.partition(":")
    return int(uid), int(gid or uid)


def make_keys(folder: Path, owner: tuple[int, int] | None) -> str:
    """Writes what is missing, checks what is there, hands it all to ``owner``; returns the
    root key's id."""
    folder.mkdir(parents=True, exist_ok=True)
    load_or_create_master_key(folder / MASTER_KEY_FILE)
    credentials_path = folder / ROOT_CREDENTIALS_FILE
    if credentials_path.exists():
        credentials = read_credentials_file(credentials_path)
    else:
        credentials = new_credentials()
        write_credentials_file(credentials_path, credentials)
    if owner is not None:
        for path in (folder, folder / MASTER_KEY_FILE, credentials_path):
            os.chown(path, *owner)
        folder.chmod(0o700)
    return credentials.access_key_id


def make_cluster_ca(folder: Path, owner: tuple[int, int] | None) -> None:
    """Writes the cluster CA unless one is there, checks it opens, hands it to ``owner``."""
    init_cluster_dir(folder)
    load_authority(folder)
    if owner is not None:
        for path in (folder, folder / CA_CERT_FILE, folder / CA_KEY_FILE):
            os.chown(path, *owner)
        folder.chmod(0o700)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where the gateways will find the files")
    parser.add_argument("--owner", type=owner_of, help="UID[:GID] to give the files to")
    parser.add_argument(
        "--cluster-dir", type=Path, help="where gateways and nodes will find the cluster CA"
    )
    args = parser.parse_args()
    try:
        key_id = make_keys(args.folder, args.owner)
        if args.cluster_dir is not None:
            make_cluster_ca(args.cluster_dir, args.owner)
    except (MasterKeyError, InvalidRequest, ClusterCredentialsError, OSError) as exc:
        print(f"init_secrets: {exc}", file=sys.stderr)
        return 1
    print(f"gateway keys in {args.folder}: root access key {key_id}")
    if args.cluster_dir is not None:
        print(f"cluster CA in {args.cluster_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
