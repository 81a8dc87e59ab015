"""Secrets at rest: access-key secrets sealed with AES-256-GCM under a 32-byte master key file.

SigV4 needs each secret back in the clear to sign with (S3.md §2), so a secret cannot be
hashed like a password; it is encrypted instead, and the database alone gives nothing away.
Each seal has a fresh 12-byte random nonce and binds its context (the access key id) as
associated data, so a ciphertext copied onto another key's row does not open.

The master key file holds the 32 raw bytes and nothing else, readable by its owner only
(mode 0600): a file of another size, or one that others may read, is refused rather than used.
One exception: a file owned by root, read by a gateway that is not root, may also be readable
by its group (0640 or less: never by others, never writable by the group). That is how a
non-root process reads a file that root manages and hands to it through a group, and it is
the only way a Kubernetes Secret can reach a non-root gateway: kubelet owns a Secret volume's
files, and with the pod's fsGroup it makes them group-readable (ORing 0440 into whatever
``defaultMode`` says: kubernetes/kubernetes#57923), so a file private to the gateway's own
user cannot be had there. PostgreSQL accepts its server key file on the same terms. A symbolic
link is refused (O_NOFOLLOW); a Secret volume's files are links, so a pod mounts the key with
``subPath``, which gives the file itself.
"""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from diststorage.core.durable import replace_durably
from diststorage.core.errors import MasterKeyError
from diststorage.core.filemodes import make_private_dir

log = logging.getLogger(__name__)

MASTER_KEY_BYTES = 32
NONCE_BYTES = 12
PRIVATE_MODE = 0o600
# The permission bits a key file may not have: any for group or others; for a root-owned file
# read by another user, write or execute for its group and any for others (see above).
_FORBIDDEN_BITS = 0o077
_FORBIDDEN_BITS_ROOT_OWNED = 0o037


@dataclass(frozen=True, slots=True)
class Sealed:
    """A secret as stored: ciphertext with its GCM tag, and the nonce it was sealed with."""

    ciphertext: bytes
    nonce: bytes


class MasterKey:
    """Seals and opens secrets; holds the key only in memory, never prints it."""

    def __init__(self, key: bytes) -> None:
        if len(key) != MASTER_KEY_BYTES:
            raise MasterKeyError(f"a master key is {MASTER_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)
        self._key = key

    def __repr__(self) -> str:
        return "MasterKey(…)"

    def seal(self, plaintext: bytes, context: str) -> Sealed:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return Sealed(self._aead.encrypt(nonce, plaintext, context.encode()), nonce)

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (HKDF-SHA256 of the master key): the same on every
        gateway that shares the master key, and telling nothing of it or of other purposes'."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
        return hkdf.derive(self._key)

    def open(self, sealed: Sealed, context: str) -> bytes:
        """The plaintext; raises MasterKeyError when the seal was made under another master
        key or context, or was altered."""
        try:
            return self._aead.decrypt(sealed.nonce, sealed.ciphertext, context.encode())
        except (InvalidTag, ValueError) as exc:
            raise MasterKeyError(
                f"a secret sealed for {context!r} does not open under this master key"
            ) from exc


def access_refusal(status: os.stat_result, reader_uid: int) -> str | None:
    """Why a key file with ``status`` may not be used by the user ``reader_uid`` (see the
    module docstring), or None when it may."""
    mode = stat.S_IMODE(status.st_mode)
    if status.st_uid == 0 and reader_uid != 0:
        if mode & _FORBIDDEN_BITS_ROOT_OWNED:
            return (
                f"is root's with mode {mode:04o}: others may read it or its group may change "
                "it; make it 0640 or less (chmod 640)"
            )
        return None
    if mode & _FORBIDDEN_BITS:
        return f"has mode {mode:04o}: others than its owner may read it; make it 0600 (chmod 600)"
    return None


def load_master_key(path: Path) -> MasterKey:
    """The master key in ``path``; raises MasterKeyError when the file is missing or a link,
    has another size than 32 bytes, or grants access that ``access_refusal`` refuses."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError as exc:
        raise MasterKeyError(f"no secrets key file at {path}") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise MasterKeyError(
                f"the secrets key file {path} is a symbolic link: give the file itself (in "
                "Kubernetes, mount the Secret's key with subPath)"
            ) from exc
        raise MasterKeyError(f"cannot read the secrets key file {path}: {exc}") from exc
    with open(fd, "rb") as handle:
        refusal = access_refusal(os.fstat(handle.fileno()), os.geteuid())
        if refusal is not None:
            raise MasterKeyError(f"the secrets key file {path} {refusal}")
        key = handle.read(MASTER_KEY_BYTES + 1)
    if len(key) != MASTER_KEY_BYTES:
        raise MasterKeyError(
            f"the secrets key file {path} holds {len(key)} bytes, not {MASTER_KEY_BYTES}"
        )
    return MasterKey(key)


def load_or_create_master_key(path: Path) -> MasterKey:
    """The master key in ``path``, made (32 random bytes, mode 0600, durably) when there is no
    file yet; see ``load_master_key`` for what is refused. Blocks (file I/O)."""
    if not path.exists():
        make_private_dir(path.parent)
        replace_durably(path, secrets.token_bytes(MASTER_KEY_BYTES), mode=PRIVATE_MODE)
        log.info("created the secrets key file %s: keep it with the metadata backups", path)
    return load_master_key(path)
