"""The one place an object's redundancy is chosen, as a pure function."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from diststorage.core.errors import NotEnoughNodes
from diststorage.core.policy import parse_policy
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.objects.policy_choice import KeepInline, WriteChunks, choose_policy

SETTINGS = GatewaySettings(
    data_dir=Path("unused"),
    redundancy="ec:4+2",
    small_object_bytes=128 * 1024,
    inline_object_bytes=16 * 1024,
)


@dataclass(frozen=True)
class Width:
    writable: int
    members: int

    def writable_count(self) -> int:
        return self.writable

    def member_count(self) -> int:
        return self.members


def chosen(requested: str | None, size: int | None, writable: int = 6, members: int = 6) -> str:
    policy = None if requested is None else parse_policy(requested)
    choice = choose_policy(policy, size, Width(writable, members), SETTINGS)
    return "inline" if isinstance(choice, KeepInline) else choice.policy.spec


def test_small_objects_of_known_size_under_the_default_are_kept_inline() -> None:
    assert chosen(None, 0) == "inline"
    assert chosen(None, 16 * 1024) == "inline"
    # Inline needs no node at all.
    assert chosen(None, 100, writable=0, members=0) == "inline"


def test_a_policy_asked_for_is_honoured_exactly() -> None:
    assert chosen("ec:4+2", 10) == "ec:4+2"
    assert chosen("replicate:2", 10 << 20) == "replicate:2"
    # Never narrowed, nor squeezed onto fewer nodes: refused until six are writable again
    # (tests/unit/test_policy_limits.py).
    with pytest.raises(NotEnoughNodes):
        chosen("ec:4+2", 10 << 20, writable=5)


def test_the_default_is_fitted_to_size_and_to_the_cluster() -> None:
    assert chosen(None, 16 * 1024 + 1) == "replicate:3"
    assert chosen(None, 128 * 1024 + 1) == "ec:4+2"
    assert chosen(None, None) == "ec:4+2"  # chunked: size unknown
    assert chosen(None, 1 << 20, writable=5) == "ec:3+2"


def test_no_inline_when_turned_off() -> None:
    settings = SETTINGS.model_copy(update={"inline_object_bytes": 0})
    assert choose_policy(None, 10, Width(6, 6), settings) == WriteChunks(
        parse_policy("replicate:3")
    )


@pytest.mark.parametrize(
    ("requested", "size", "writable", "members", "message"),
    [
        (
            None,
            1 << 20,
            3,
            6,
            "ec:4+2 needs at least 4 writable nodes (6 for full redundancy); 3 are up",
        ),
    ],
)
def test_clusters_too_small_are_refused(
    requested: str | None, size: int, writable: int, members: int, message: str
) -> None:
    with pytest.raises(NotEnoughNodes) as raised:
        chosen(requested, size, writable, members)
    assert raised.value.message == message


def test_the_default_on_exactly_k_writable_nodes_is_written_degraded_not_narrowed() -> None:
    # M nodes down: ec:4+2 is still written (its shards doubled up, repaired later), where
    # narrowing to ec:2+2 would cost two bytes per byte for good.
    assert chosen(None, 1 << 20, writable=4) == "ec:4+2"
    assert chosen(None, 1 << 20, writable=5) == "ec:3+2"


def test_a_policy_asked_for_is_never_written_on_fewer_distinct_nodes() -> None:
    with pytest.raises(NotEnoughNodes):
        chosen("ec:4+2", 1 << 20, writable=4)
