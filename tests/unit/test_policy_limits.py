"""What redundancy a client may ask for: the operator's limits, and the cluster's width."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from diststorage.core.errors import InvalidPolicy, NotEnoughNodes
from diststorage.core.policy import parse_policy
from diststorage.core.policy_limits import (
    PolicyLimits,
    check_requested_policy,
    spare_shards,
    storage_overhead,
)
from diststorage.core.settings import GatewaySettings
from diststorage.gateway.objects.policy_choice import WriteChunks, choose_policy

DEFAULTS = GatewaySettings(data_dir=Path("unused"))


@dataclass(frozen=True)
class Width:
    writable: int
    members: int

    def writable_count(self) -> int:
        return self.writable

    def member_count(self) -> int:
        return self.members


def limits(**given: object) -> PolicyLimits:
    return DEFAULTS.model_copy(update=given).policy_limits


def refusal(spec: str, settings: GatewaySettings = DEFAULTS, nodes: int = 32) -> str:
    with pytest.raises(InvalidPolicy) as raised:
        choose_policy(parse_policy(spec), 1 << 20, Width(nodes, nodes), settings)
    return raised.value.message


def accepted(spec: str, settings: GatewaySettings = DEFAULTS, nodes: int = 32) -> bool:
    choice = choose_policy(parse_policy(spec), 1 << 20, Width(nodes, nodes), settings)
    return choice == WriteChunks(parse_policy(spec))


def test_spare_shards_and_overhead_of_each_kind() -> None:
    assert spare_shards(parse_policy("ec:4+2")) == 2
    assert spare_shards(parse_policy("ec:6+0")) == 0
    assert spare_shards(parse_policy("replicate:3")) == 2
    assert spare_shards(parse_policy("replicate:1")) == 0
    assert storage_overhead(parse_policy("ec:4+2")) == 1.5
    assert storage_overhead(parse_policy("ec:1+5")) == 6.0
    assert storage_overhead(parse_policy("replicate:3")) == 3.0


def test_the_defaults_ask_one_spare_shard_and_at_most_three_bytes_per_byte() -> None:
    assert DEFAULTS.min_spare_shards == 1
    assert DEFAULTS.max_policy_overhead == 3.0
    assert DEFAULTS.allowed_policies == ()
    for spec in ("ec:4+2", "ec:4+1", "ec:10+4", "ec:2+4", "ec:28+4", "replicate:2", "replicate:3"):
        assert accepted(spec), spec


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("ec:6+0", "redundancy ec:6+0 survives 0 lost nodes; this gateway needs policies "
         "that survive at least 1"),
        ("replicate:1", "redundancy replicate:1 survives 0 lost nodes; this gateway needs "
         "policies that survive at least 1"),
        ("replicate:4", "redundancy replicate:4 stores 4 bytes per byte; this gateway allows "
         "at most 3"),
        ("replicate:32", "redundancy replicate:32 stores 32 bytes per byte; this gateway "
         "allows at most 3"),
        ("ec:1+5", "redundancy ec:1+5 stores 6 bytes per byte; this gateway allows at most 3"),
        ("ec:2+5", "redundancy ec:2+5 stores 3.5 bytes per byte; this gateway allows at most 3"),
        ("ec:4+28", "redundancy ec:4+28 stores 8 bytes per byte; this gateway allows at most 3"),
    ],
)  # fmt: skip
def test_the_defaults_refuse_no_redundancy_and_amplification(spec: str, message: str) -> None:
    assert refusal(spec) == message


def test_the_bounds_are_the_operators() -> None:
    relaxed = DEFAULTS.model_copy(update={"min_spare_shards": 0, "max_policy_overhead": 6.0})
    for spec in ("ec:6+0", "replicate:1", "replicate:6", "ec:1+5"):
        assert accepted(spec, relaxed), spec
    assert "stores 7 bytes" in refusal("replicate:7", relaxed)
    strict = DEFAULTS.model_copy(update={"min_spare_shards": 3})
    assert "survives 2 lost nodes" in refusal("replicate:3", strict)
    assert accepted("ec:8+3", strict)


def test_the_default_policy_is_always_allowed() -> None:
    # The operator chose it: a client naming it explicitly is not refused by the bounds.
    split = DEFAULTS.model_copy(update={"redundancy": "ec:6+0"})
    assert accepted("ec:6+0", split)
    single = DEFAULTS.model_copy(
        update={"redundancy": "replicate:1", "allowed_policies": ("ec:4+2",)}
    )
    assert accepted("replicate:1", single)
    check_requested_policy(parse_policy(" ec:04+02 "), limits(min_spare_shards=5))


def test_a_list_is_exactly_what_clients_may_ask_for() -> None:
    listed = DEFAULTS.model_copy(update={"allowed_policies": ("replicate:3", "ec:6+0")})
    # Listed policies skip the bounds: the operator allowed them knowingly.
    assert accepted("ec:6+0", listed)
    assert accepted("replicate:3", listed)
    assert accepted("ec:4+2", listed)  # the default
    assert refusal("replicate:2", listed) == (
        "redundancy replicate:2 is not allowed here; ask for one of ec:4+2, ec:6+0, "
        "replicate:3, or none for the default"
    )
    assert "is not allowed here" in refusal("ec:8+4", listed)


def test_listed_specs_compare_as_policies_not_text() -> None:
    listed = DEFAULTS.model_copy(update={"allowed_policies": ("ec:06+03",)})
    assert accepted("ec:6+3", listed)


def test_a_bad_listed_spec_stops_the_gateway_from_starting() -> None:
    with pytest.raises(InvalidPolicy):
        GatewaySettings(data_dir=Path("unused"), allowed_policies=("ec:4+2", "raid5"))


@pytest.mark.parametrize(
    ("field", "value"), [("min_spare_shards", -1), ("max_policy_overhead", 0.5)]
)
def test_bounds_out_of_range_are_refused(field: str, value: float) -> None:
    with pytest.raises(ValueError):
        GatewaySettings(data_dir=Path("unused"), **{field: value})  # type: ignore[arg-type]


def test_a_policy_wider_than_the_member_nodes_is_a_client_error() -> None:
    with pytest.raises(InvalidPolicy) as raised:
        choose_policy(parse_policy("ec:6+2"), 10, Width(6, 6), DEFAULTS)
    assert raised.value.message == "redundancy ec:6+2 needs 8 distinct nodes; the cluster has 6"


def test_a_policy_wider_than_the_writable_nodes_is_refused_until_they_are_back() -> None:
    # Five of six nodes up: ec:4+2 would put two shards on one node; the client asked for six.
    with pytest.raises(NotEnoughNodes) as raised:
        choose_policy(parse_policy("ec:4+2"), 10 << 20, Width(5, 6), DEFAULTS)
    assert raised.value.message == ("redundancy ec:4+2 needs 6 distinct writable nodes; 5 are up")
    assert choose_policy(parse_policy("ec:4+2"), 10 << 20, Width(6, 6), DEFAULTS) == WriteChunks(
        parse_policy("ec:4+2")
    )
    # The default stays writable: it is fitted to the five nodes instead.
    assert choose_policy(None, 10 << 20, Width(5, 6), DEFAULTS) == WriteChunks(
        parse_policy("ec:3+2")
    )


def test_the_limits_come_before_the_width() -> None:
    # A refused policy is refused as such even on a cluster too small for it.
    assert "survives 0 lost nodes" in refusal("ec:9+0", nodes=6)
    assert "needs 8 distinct nodes" in refusal("ec:6+2", nodes=6)
