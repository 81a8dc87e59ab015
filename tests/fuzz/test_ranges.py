"""Range headers: ``parse_range_spec`` never raises, and ``RangeSpec.resolve`` gives a range
inside the object or RangeNotSatisfiable, exactly as RFC 9110 reads a single byte range."""

from __future__ import annotations

import re

from hypothesis import example, given
from hypothesis import strategies as st

from diststorage.core.errors import RangeNotSatisfiable
from diststorage.gateway.http.headers import parse_range_spec
from diststorage.gateway.objects.operations import ByteRange

from .strategies import any_text, digit_strings

# RFC 9110's DIGIT is ASCII only.
_SINGLE_RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)")
# Positions past any size the tests use: the oracle never turns more digits into an int.
_FAR = 10**30
SIZES = st.one_of(st.integers(0, 10), st.integers(0, 5 * 2**40))


def _number(digits: str) -> int:
    significant = digits.lstrip("0")
    return int(significant or "0") if len(significant) < 30 else _FAR


def _less(a: str, b: str) -> bool:
    """``a < b`` for digit strings of any length, without int()."""
    a, b = a.lstrip("0"), b.lstrip("0")
    return (len(a), a) < (len(b), b)


def _oracle(header: str, size: int) -> ByteRange | str | None:
    """The range a header selects of ``size`` bytes: None for the whole object (no single,
    well-formed byte range), "416" for one that selects nothing."""
    match = _SINGLE_RANGE.fullmatch(header.strip())
    if match is None or match.groups() == ("", ""):
        return None
    first, last = match.groups()
    if not first:
        suffix = _number(last)
        return "416" if suffix == 0 or size == 0 else ByteRange(max(size - suffix, 0), size)
    if last and _less(last, first):
        return None
    start = _number(first)
    if start >= size:
        return "416"
    return ByteRange(start, size if not last else min(_number(last) + 1, size))


def range_headers() -> st.SearchStrategy[str]:
    numbers = st.one_of(st.just(""), digit_strings())
    spec = st.tuples(numbers, numbers).map(lambda pair: f"bytes={pair[0]}-{pair[1]}")
    padded = st.tuples(st.sampled_from(["", " ", "\t", "\n"]), spec, st.sampled_from(["", " "]))
    return st.one_of(
        spec, padded.map("".join), st.from_regex(r"bytes=[0-9,-]{0,12}", fullmatch=True), any_text()
    )


@given(range_headers(), SIZES)
@example("bytes=" + "9" * 5000 + "-", 1 << 20)
@example("bytes=0-" + "9" * 5000, 1 << 20)
@example("bytes=-" + "9" * 5000, 1 << 20)
@example("bytes=" + "9" * 4400 + "-" + "9" * 4300, 10)
@example("bytes=١-٢", 10)
@example("bytes=-0", 10)
@example("bytes=5-2", 10)
@example("bytes=1048575-", 1 << 20)
def test_a_range_lies_within_the_object_or_is_not_satisfiable(header: str, size: int) -> None:
    expected = _oracle(header, size)
    spec = parse_range_spec(header)
    if spec is None:
        assert expected is None
        return
    try:
        selected = spec.resolve(size)
    except RangeNotSatisfiable as error:
        assert error.object_size == size
        assert expected == "416"
        return
    assert 0 <= selected.start < selected.end <= size
    assert selected == expected


@given(st.integers(0, 2**45), st.integers(0, 2**45), SIZES)
def test_a_well_formed_range_selects_what_it_names(first: int, length: int, size: int) -> None:
    spec = parse_range_spec(f"bytes={first}-{first + length}")
    assert spec is not None
    if first >= size:
        return
    assert spec.resolve(size) == ByteRange(first, min(first + length + 1, size))
