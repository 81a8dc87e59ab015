"""The identity file both daemons keep in their data folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from diststorage.core.errors import DataLoss
from diststorage.core.identity import load_or_create_identity
from diststorage.core.ids import is_valid_id, new_id


def test_a_new_identity_is_stored_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "folder" / "gateway.json"
    identity = load_or_create_identity(path)
    assert is_valid_id(identity)
    assert json.loads(path.read_text()) == {"id": identity}
    assert load_or_create_identity(path) == identity
    assert sorted(p.name for p in path.parent.iterdir()) == ["gateway.json"]


def test_an_existing_gateway_file_keeps_working(tmp_path: Path) -> None:
    path, identity = tmp_path / "gateway.json", new_id()
    path.write_text(json.dumps({"id": identity}))  # as gateways wrote it before
    assert load_or_create_identity(path) == identity


def test_the_key_is_the_callers(tmp_path: Path) -> None:
    path, identity = tmp_path / "node.json", new_id()
    path.write_text(json.dumps({"node_id": identity}) + "\n")
    assert load_or_create_identity(path, key="node_id") == identity
    with pytest.raises(DataLoss):
        load_or_create_identity(path)


@pytest.mark.parametrize("content", ['{"id": "../../etc"}', "{", "[]", '{"id": 7}', ""])
def test_a_damaged_file_is_data_loss_and_left_alone(tmp_path: Path, content: str) -> None:
    path = tmp_path / "gateway.json"
    path.write_text(content)
    with pytest.raises(DataLoss):
        load_or_create_identity(path)
    assert path.read_text() == content
