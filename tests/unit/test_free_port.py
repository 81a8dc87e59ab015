import random
import socket
from pathlib import Path

import pytest

from diststorage.local import cluster
from diststorage.local.cluster import free_port


def test_ports_lie_below_the_ephemeral_range_and_are_never_repeated(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ranges = tmp_path / "ip_local_port_range"
    ranges.write_text("40000\t60999\n")
    monkeypatch.setattr(cluster, "EPHEMERAL_RANGE_FILE", ranges)
    ports = [free_port() for _ in range(200)]
    assert all(cluster.LOWEST_PORT <= port < 40000 for port in ports)
    assert len(set(ports)) == len(ports)


def test_a_port_something_listens_on_is_passed_over(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        free = spare.getsockname()[1]
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        taken = listener.getsockname()[1]
        # The listener's port comes up first, then a free one.
        draws = iter([taken, free])
        monkeypatch.setattr(random, "randrange", lambda _low, _high: next(draws))
        assert free_port() == free


def test_without_a_readable_range_the_kernel_chooses(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(cluster, "EPHEMERAL_RANGE_FILE", tmp_path / "missing")
    port = free_port()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", port))
