"""Secrets at rest: sealing under the master key, the key file's checks, credentials files,
and a gateway's refusal of a master key that is not its database's."""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from pathlib import Path

import pytest

from diststorage.core.credentials import (
    KEY_ID_CHARS,
    SECRET_CHARS,
    Credentials,
    new_access_key_id,
    new_credentials,
    read_credentials_file,
    write_credentials_file,
)
from diststorage.core.errors import InvalidRequest, MasterKeyError
from diststorage.core.secrets import (
    MASTER_KEY_BYTES,
    MasterKey,
    Sealed,
    access_refusal,
    load_master_key,
    load_or_create_master_key,
)
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.auth.bootstrap import load_root_key, open_master_key
from diststorage.meta import MetadataStore


def test_a_sealed_secret_opens_only_under_its_key_and_context() -> None:
    master = MasterKey(os.urandom(MASTER_KEY_BYTES))
    sealed = master.seal(b"the secret", "DSKEYONE")
    assert b"the secret" not in sealed.ciphertext
    assert len(sealed.nonce) == 12
    assert master.open(sealed, "DSKEYONE") == b"the secret"
    assert master.seal(b"the secret", "DSKEYONE").nonce != sealed.nonce, "a fresh nonce each"
    with pytest.raises(MasterKeyError):
        master.open(sealed, "DSKEYTWO")  # copied onto another key's row
    with pytest.raises(MasterKeyError):
        MasterKey(os.urandom(MASTER_KEY_BYTES)).open(sealed, "DSKEYONE")
    tampered = Sealed(bytes([sealed.ciphertext[0] ^ 1]) + sealed.ciphertext[1:], sealed.nonce)
    with pytest.raises(MasterKeyError):
        master.open(tampered, "DSKEYONE")
    assert repr(master) == "MasterKey(…)"


def test_the_key_file_is_made_private_and_then_kept(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "secrets.key"
    first = load_or_create_master_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == MASTER_KEY_BYTES
    sealed = first.seal(b"x", "c")
    assert load_or_create_master_key(path).open(sealed, "c") == b"x"


def test_a_key_file_others_may_read_or_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    with pytest.raises(MasterKeyError, match="no secrets key file"):
        load_master_key(path)
    path.write_bytes(os.urandom(MASTER_KEY_BYTES))
    path.chmod(0o640)
    with pytest.raises(MasterKeyError, match="0640"):
        load_master_key(path)
    with pytest.raises(MasterKeyError):
        load_or_create_master_key(path)
    path.chmod(0o600)
    path.write_bytes(os.urandom(MASTER_KEY_BYTES - 1))
    with pytest.raises(MasterKeyError, match="31 bytes"):
        load_master_key(path)


async def test_a_gateway_refuses_a_master_key_that_is_not_its_databases(
    tmp_path: Path, sqlite_store: MetadataStore
) -> None:
    first = GatewaySettings(data_dir=tmp_path / "one")
    await open_master_key(first, sqlite_store.accounts)
    assert (tmp_path / "one" / "secrets.key").exists()
    await open_master_key(first, sqlite_store.accounts)  # the same key again: fine
    other = GatewaySettings(data_dir=tmp_path / "two")
    with pytest.raises(MasterKeyError, match="not the master key this metadata database"):
        await open_master_key(other, sqlite_store.accounts)
    named = GatewaySettings(data_dir=tmp_path / "one", secrets_key_file=tmp_path / "absent")
    with pytest.raises(MasterKeyError, match="no secrets key file"):
        await open_master_key(named, sqlite_store.accounts)
    shared = GatewaySettings(
        data_dir=tmp_path / "three", secrets_key_file=tmp_path / "one" / "secrets.key"
    )
    await open_master_key(shared, sqlite_store.accounts)


def test_new_keys_have_aws_lengths() -> None:
    ids = {new_access_key_id() for _ in range(100)}
    assert len(ids) == 100
    for key_id in ids:
        assert len(key_id) == KEY_ID_CHARS
        assert re.fullmatch(r"DS[A-Z2-7]{18}", key_id), key_id
    assert len(new_credentials().secret_access_key) == SECRET_CHARS


def test_credentials_never_show_their_secret() -> None:
    credentials = Credentials("DSSOMEKEY", "a-very-secret-value")
    assert "a-very-secret-value" not in repr(credentials)
    with pytest.raises(InvalidRequest):
        Credentials("has/slash", "a-very-secret-value")
    with pytest.raises(InvalidRequest):
        Credentials("DSSOMEKEY", "short")


def test_credentials_files_in_json_and_ini(tmp_path: Path) -> None:
    written = new_credentials()
    path = tmp_path / "creds.json"
    write_credentials_file(path, written)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_credentials_file(path) == written
    assert json.loads(path.read_text())["access_key_id"] == written.access_key_id
    ini = tmp_path / "credentials"
    ini.write_text(
        "[default]\naws_access_key_id = DSINIKEY\naws_secret_access_key = ini-secret-value\n"
    )
    assert read_credentials_file(ini) == Credentials("DSINIKEY", "ini-secret-value")
    for bad in ("[x]\nother = 1\n", '["a list"]', '{"access_key_id": "DSX"}', "not anything"):
        ini.write_text(bad)
        with pytest.raises(InvalidRequest):
            read_credentials_file(ini)


def test_the_root_key_comes_from_the_environment_a_file_or_is_generated(
    tmp_path: Path,
) -> None:
    given = GatewaySettings(
        data_dir=tmp_path, root_access_key="DSENVROOT", root_secret_key="env-root-secret"
    )
    assert load_root_key(given).credentials == Credentials("DSENVROOT", "env-root-secret")
    with pytest.raises(InvalidRequest):
        load_root_key(GatewaySettings(data_dir=tmp_path, root_access_key="DSENVROOT"))
    filed = tmp_path / "root.json"
    write_credentials_file(filed, Credentials("DSFILEROOT", "file-root-secret"))
    from_file = GatewaySettings(data_dir=tmp_path, root_credentials_file=filed)
    assert load_root_key(from_file).credentials.access_key_id == "DSFILEROOT"
    generated = load_root_key(GatewaySettings(data_dir=tmp_path / "fresh"))
    path = tmp_path / "fresh" / "root-credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_root_key(GatewaySettings(data_dir=tmp_path / "fresh"))
    assert again.credentials == generated.credentials


def _status(mode: int, uid: int, gid: int = 10001) -> os.stat_result:
    return os.stat_result((stat.S_IFREG | mode, 1, 1, 1, uid, gid, MASTER_KEY_BYTES, 0, 0, 0))


def test_a_key_file_is_private_to_its_owner_unless_root_hands_it_to_a_group() -> None:
    gateway = 10001
    for mode in (0o600, 0o400):
        assert access_refusal(_status(mode, gateway), gateway) is None, oct(mode)
    for mode in (0o640, 0o604, 0o660):
        assert access_refusal(_status(mode, gateway), gateway), oct(mode)
    # Root's file, read by the gateway through its group: what a Kubernetes Secret mount gives.
    for mode in (0o440, 0o400, 0o640):
        assert access_refusal(_status(mode, 0), gateway) is None, oct(mode)
    for mode in (0o444, 0o460, 0o450, 0o442, 0o644):
        assert access_refusal(_status(mode, 0), gateway), oct(mode)
    # The exception is for root's files only, and not when root itself reads them.
    assert access_refusal(_status(0o440, 20002), gateway)
    assert access_refusal(_status(0o440, 0), 0)


def _load_as(uid: int, gid: int, path: Path) -> str:
    """``load_master_key(path)`` in a child process that runs as ``uid``:``gid`` (with ``gid``
    as its supplementary group, as a pod's fsGroup is): ``opened`` or the refusal."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        try:
            os.close(read_end)
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
            try:
                load_master_key(path)
                outcome = "opened"
            except MasterKeyError as exc:
                outcome = str(exc)
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        outcome = reader.read().decode()
    os.waitpid(pid, 0)
    return outcome


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root, to make root's files and drop to a user")
def test_a_gateway_opens_a_key_file_mounted_as_kubernetes_mounts_a_secret() -> None:
    """Kubelet's files: owned by root, group the pod's fsGroup, mode defaultMode | 0440; the
    gateway runs as another user in that group. A link to the file (what the Secret volume
    itself holds) is refused, saying to mount it with subPath."""
    uid = gid = 10001
    # Not under pytest's own folders, which only their owner may enter.
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o711)
        _check_secret_like_files(uid, gid, Path(folder))


def _check_secret_like_files(uid: int, gid: int, folder: Path) -> None:
    path = folder / "secrets.key"
    path.write_bytes(os.urandom(MASTER_KEY_BYTES))
    os.chown(path, 0, gid)
    path.chmod(0o440)
    assert _load_as(uid, gid, path) == "opened"
    path.chmod(0o444)
    assert "0444" in _load_as(uid, gid, path)
    path.chmod(0o440)
    link = folder / "link.key"
    link.symlink_to(path)
    assert "subPath" in _load_as(uid, gid, link)
    os.chown(path, uid, gid)
    assert "0440" in _load_as(uid, gid, path), "the gateway's own file must be 0600"
