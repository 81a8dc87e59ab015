"""Inputs the fuzz tests share: text as the wire hands it over, and text built to hit parsers
where they decide (percent escapes, digits, separators)."""

from __future__ import annotations

import itertools

from hypothesis import strategies as st

# Pieces that sit on a parser's decision points; mixed with free text they reach the branches
# that random text alone hardly ever does.
PATH_PIECES = (
    "/", "//", "?", "%", "%2", "%2F", "%2f", "%5F", "_/", "_", "%00", "%25", "%C3%A9", "%ff",
    "%c0%af", "%ed%a0%80", "%E2%80%AE", "+", " ", ".", "..", "\n", "\r", "\x00", "\ufffe",
)  # fmt: skip


def wire_text(max_size: int = 64) -> st.SearchStrategy[str]:
    """Text as aiohttp hands it over: any bytes, decoded as UTF-8 with ``surrogateescape``."""
    return st.binary(max_size=max_size).map(lambda raw: raw.decode("utf-8", "surrogateescape"))


def any_text(max_size: int = 64) -> st.SearchStrategy[str]:
    """Free text, lone surrogates included, or wire text."""
    with_surrogates = st.one_of(st.characters(), st.characters(categories=["Cs"]))
    free = st.text(with_surrogates, max_size=max_size)
    return st.one_of(st.text(max_size=max_size), free, wire_text(max_size))


def pieced(
    pieces: tuple[str, ...], max_pieces: int = 12, free: st.SearchStrategy[str] | None = None
) -> st.SearchStrategy[str]:
    """Text made of the given pieces and free text (``any_text`` unless given), in any order."""
    piece = st.one_of(st.sampled_from(pieces), any_text(8) if free is None else free)
    return st.lists(piece, max_size=max_pieces).map("".join)


def raw_paths() -> st.SearchStrategy[str]:
    """Request targets as received: mostly absolute paths, some not."""
    body = pieced(PATH_PIECES)
    return st.one_of(body.map(lambda text: "/" + text), body)


def digit_strings() -> st.SearchStrategy[str]:
    """Numbers as a client may write them: short, long, signed, padded, in other scripts."""
    return st.one_of(
        st.from_regex(r"[0-9]{1,12}", fullmatch=True),
        st.from_regex(r"0{0,30}[0-9]{0,40}", fullmatch=True),
        st.from_regex(r"[+-]?[0-9]{1,4}", fullmatch=True),
        st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=4),
        st.integers(min_value=4290, max_value=4400).map(lambda n: "9" * n),
        any_text(8),
    )


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` in pieces, cut where ``cuts`` say (modulo its length); none empty."""
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def mutated(data: bytes, at: int, byte: int, how: int) -> bytes:
    """``data`` with one byte replaced (``how`` 0), inserted (1) or deleted (2)."""
    at %= len(data) + 1
    if how == 0:
        return data[:at] + bytes([byte]) + data[at + 1 :]
    if how == 1:
        return data[:at] + bytes([byte]) + data[at:]
    return data[:at] + data[at + 1 :]
