"""Owner-only folders and files, whatever the umask; what exists keeps its mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from diststorage.core.durable import replace_durably
from diststorage.core.filemodes import create_private_file, make_private_dir, open_private_file


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o000, 0o022, 0o277], ids=["umask000", "umask022", "umask277"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_new_folders_and_their_new_parents_are_0700(tmp_path: Path, umask: int) -> None:
    make_private_dir(tmp_path / "a" / "b" / "c")
    for folder in ("a", "a/b", "a/b/c"):
        assert mode_of(tmp_path / folder) == 0o700, folder
    make_private_dir(tmp_path / "a" / "b" / "c")  # again: nothing to do
    assert mode_of(tmp_path / "a" / "b" / "c") == 0o700


def test_an_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    shared = tmp_path / "volume"
    shared.mkdir()
    shared.chmod(0o2775)
    make_private_dir(shared / "node")
    assert stat.S_IMODE(shared.stat().st_mode) == 0o2775
    assert mode_of(shared / "node") == 0o700


def test_new_files_are_0600_and_existing_ones_keep_their_mode_and_bytes(
    tmp_path: Path, umask: int
) -> None:
    new = tmp_path / "new"
    fd = open_private_file(new, os.O_WRONLY | os.O_TRUNC)
    with open(fd, "wb") as handle:
        handle.write(b"bytes")
    assert mode_of(new) == 0o600
    assert new.read_bytes() == b"bytes"
    old = tmp_path / "old"
    old.write_bytes(b"kept")
    old.chmod(0o640)
    create_private_file(old)
    os.close(open_private_file(old, os.O_WRONLY | os.O_APPEND))
    assert mode_of(old) == 0o640
    assert old.read_bytes() == b"kept"
    create_private_file(tmp_path / "empty")
    assert mode_of(tmp_path / "empty") == 0o600


def test_durable_files_are_0600_unless_told(tmp_path: Path, umask: int) -> None:
    replace_durably(tmp_path / "identity.json", b"{}")
    assert mode_of(tmp_path / "identity.json") == 0o600
    replace_durably(tmp_path / "public", b"x", mode=0o644)
    assert mode_of(tmp_path / "public") == 0o644
