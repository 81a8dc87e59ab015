"""Redundancy specs (``X-Redundancy``, the gateway's default): ``parse_policy`` takes exactly
``ec:K+M`` and ``replicate:N`` in ASCII digits within MAX_SHARDS, and every policy's string
form parses back to it."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from diststorage.core.errors import InvalidPolicy
from diststorage.core.policy import MAX_SHARDS, RedundancyPolicy, parse_policy

from .strategies import any_text, digit_strings

_GRAMMAR = re.compile(r"ec:([0-9]{1,2})\+([0-9]{1,2})|replicate:([0-9]{1,2})")


def _specs() -> st.SearchStrategy[str]:
    number = digit_strings()
    shaped = st.one_of(
        st.tuples(number, number).map(lambda km: f"ec:{km[0]}+{km[1]}"),
        number.map(lambda n: f"replicate:{n}"),
    )
    padding = st.sampled_from(["", " ", "\t", "\n", "\u00a0"])
    return st.one_of(shaped, st.tuples(padding, shaped, padding).map("".join), any_text(16))


@given(_specs())
@example("ec:٤+٢")
@example("replicate:³")
@example("ec:4+2\n")
@example(" ec:04+02 ")
@example("ec:0+2")
@example("replicate:33")
def test_a_spec_is_the_grammar_within_bounds_or_invalid_policy(spec: str) -> None:
    match = _GRAMMAR.fullmatch(spec.strip())
    try:
        policy = parse_policy(spec)
    except InvalidPolicy:
        if match is not None:
            k, m, n = (int(group) if group else None for group in match.groups())
            assert (n is not None and not 1 <= n <= MAX_SHARDS) or (
                k is not None and m is not None and (k < 1 or k + m > MAX_SHARDS)
            )
        return
    assert match is not None
    assert 1 <= policy.total_shards <= MAX_SHARDS
    assert parse_policy(policy.spec) == policy


@given(st.integers(1, MAX_SHARDS), st.integers(0, MAX_SHARDS), st.booleans())
def test_every_policy_parses_back_from_its_string(data: int, parity: int, ec: bool) -> None:
    if data + parity > MAX_SHARDS:
        return
    if ec:
        policy = RedundancyPolicy("ec", data, parity)
    else:
        policy = RedundancyPolicy("replicate", 1, data - 1)
    assert parse_policy(str(policy)) == policy
    assert parse_policy(f" {policy.spec}\t") == policy
