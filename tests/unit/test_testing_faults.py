"""The file faults of diststorage.testing.Faults, and LocalCluster's accessors before a start
(the process faults are exercised against real processes by tests/faults)."""

from __future__ import annotations

from pathlib import Path

import pytest

from diststorage.local import LocalCluster
from diststorage.testing import Faults
from diststorage.testing.faults import FLIP_MASK


def test_flip_byte_flips_exactly_one_byte(tmp_path: Path) -> None:
    path = tmp_path / "chunk"
    path.write_bytes(bytes(range(9)))
    Faults.flip_byte(path)
    assert path.read_bytes() == bytes([0, 1, 2, 3 ^ FLIP_MASK, 4, 5, 6, 7, 8])
    Faults.flip_byte(path, 0)
    assert path.read_bytes()[0] == FLIP_MASK


def test_corrupted_restores_the_files_even_when_the_block_fails(tmp_path: Path) -> None:
    paths = [tmp_path / "a", tmp_path / "b"]
    for path in paths:
        path.write_bytes(b"0123456789")
    with pytest.raises(RuntimeError), Faults.corrupted(paths, at=0.5):
        assert [p.read_bytes()[5] for p in paths] == [ord("5") ^ FLIP_MASK] * 2
        assert [p.read_bytes()[:5] for p in paths] == [b"01234"] * 2
        raise RuntimeError("the test's own failure")
    assert [p.read_bytes() for p in paths] == [b"0123456789"] * 2


def test_removed_moves_files_away_and_back(tmp_path: Path) -> None:
    keep = tmp_path / "keep"
    keep.mkdir()
    path = tmp_path / "chunk"
    path.write_bytes(b"data")
    with Faults.removed([path], keep):
        assert not path.exists()
        assert [p.read_bytes() for p in keep.iterdir()] == [b"data"]
    assert path.read_bytes() == b"data"
    assert not any(keep.iterdir())


def test_chunk_files_lists_committed_chunks_of_the_given_nodes(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, nodes=2)
    faults = Faults(cluster)
    chunk = faults.node_chunks_dir(1) / "ab" / "abcdef"
    chunk.parent.mkdir(parents=True)
    chunk.write_bytes(b"x")
    assert faults.chunk_files() == {chunk.resolve()}
    assert faults.chunk_files([0]) == set()


def test_cluster_accessors_before_start(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path, extra_gateway_ports=[(7011, 7012)])
    assert cluster.gateway_pids() == []
    assert not cluster.gateway_running(0)
    assert not cluster.gateway_running(5)
    assert cluster.gateway_log_path(0) == cluster.data_dir / "logs" / "gateway.log"
    assert cluster.gateway_log_path(1) == cluster.data_dir / "logs" / "gateway1.log"
