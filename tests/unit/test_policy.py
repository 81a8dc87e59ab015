import pytest

from diststorage.core.errors import InvalidPolicy
from diststorage.core.policy import parse_policy, policy_for_size, policy_for_width


@pytest.mark.parametrize(
    ("spec", "total", "needed"),
    [("ec:4+2", 6, 4), ("ec:6+0", 6, 6), ("replicate:3", 3, 1), ("ec:1+1", 2, 1)],
)
def test_valid(spec: str, total: int, needed: int) -> None:
    policy = parse_policy(spec)
    assert (policy.total_shards, policy.needed_to_read, policy.spec) == (total, needed, spec)


@pytest.mark.parametrize(
    "spec",
    ["", "ec:4", "ec:0+2", "ec:30+3", "replicate:0", "raid5", "ec:4+2 ", "EC:4+2", "ec:-1+2"],
)
def test_invalid(spec: str) -> None:
    if spec == "ec:4+2 ":
        assert parse_policy(spec).spec == "ec:4+2"  # surrounding blanks are tolerated
        return
    with pytest.raises(InvalidPolicy):
        parse_policy(spec)


def test_small_objects_under_a_default_ec_policy_are_replicated_with_equal_tolerance() -> None:
    default = parse_policy("ec:4+2")
    assert policy_for_size(default, 0, 128).spec == "replicate:3"
    assert policy_for_size(default, 128, 128).spec == "replicate:3"
    assert policy_for_size(default, 129, 128) == default
    assert policy_for_size(default, None, 128) == default  # chunked: size unknown
    assert policy_for_size(parse_policy("ec:10+4"), 5, 128).spec == "replicate:5"


def test_split_and_replica_defaults_are_kept_for_small_objects() -> None:
    for spec in ("ec:6+0", "replicate:2"):
        assert policy_for_size(parse_policy(spec), 1, 128) == parse_policy(spec)


@pytest.mark.parametrize(
    ("default", "writable", "fitted"),
    [
        ("ec:4+2", 6, "ec:4+2"),  # wide enough
        ("ec:4+2", 9, "ec:4+2"),
        ("ec:4+2", 5, "ec:3+2"),  # one node short: still survives two losses
        ("ec:4+2", 4, "ec:4+2"),  # exactly K: written degraded, doubled up, not narrowed
        ("ec:6+3", 8, "ec:5+3"),
        ("ec:6+3", 7, "ec:4+3"),
        ("ec:6+0", 5, "ec:6+0"),  # a plain split has no slack to keep
        ("replicate:3", 2, "replicate:3"),
    ],
)
def test_default_policy_fitted_to_a_narrow_cluster(
    default: str, writable: int, fitted: str
) -> None:
    assert policy_for_width(parse_policy(default), writable).spec == fitted
