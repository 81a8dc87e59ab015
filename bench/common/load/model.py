"""What the chaos load writes and what it expects back. Pure: no I/O, no clock.

- ``ContentPool``: object bodies cut from a few random blocks, each block stamped with the
  object's nonce and the block's index, so any two versions differ and none is held whole.
- ``SizeClass`` / ``LoadMix``: object sizes from 0 bytes to a couple of hundred MiB, each class
  with a fixed pool of keys (which bounds what the load can store) and a weight.
- ``Model``: for every key, the versions that may be the committed one. A clean answer narrows
  it to one; an answer that was lost (connection cut after the body was sent) widens it, because
  the write may or may not have committed. A GET must return one of the possible versions, and a
  GET of a key that is certainly committed must succeed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

KIB = 1 << 10
MIB = 1 << 20
BLOCK_BYTES = MIB
POOL_BLOCKS = 4
STAMP_BYTES = 16


class ContentPool:
    """Object bodies: ``POOL_BLOCKS`` random blocks, held once, cycled and stamped."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self._blocks = [rng.randbytes(BLOCK_BYTES) for _ in range(POOL_BLOCKS)]

    def blocks(self, nonce: int, size: int) -> Iterator[bytes]:
        """The body of object ``nonce`` with ``size`` bytes, in blocks of at most 1 MiB."""
        for index, offset in enumerate(range(0, size, BLOCK_BYTES)):
            length = min(BLOCK_BYTES, size - offset)
            stamp = nonce.to_bytes(8, "big") + index.to_bytes(8, "big")
            base = memoryview(self._blocks[(nonce + index) % POOL_BLOCKS])
            yield (stamp + base[STAMP_BYTES:length])[:length]


@dataclass(frozen=True)
class SizeClass:
    name: str
    low_bytes: int
    high_bytes: int
    keys: int
    weight: float
    log_scale: bool = False

    def draw_size(self, rng: random.Random) -> int:
        if not self.log_scale:
            return rng.randint(self.low_bytes, self.high_bytes)
        exponent = rng.uniform(math.log(self.low_bytes), math.log(self.high_bytes))
        return min(self.high_bytes, max(self.low_bytes, round(math.exp(exponent))))

    def key(self, index: int) -> str:
        return f"chaos/{self.name}/{index:04d}"

    @property
    def max_stored_bytes(self) -> int:
        return self.keys * self.high_bytes


class OpKind(StrEnum):
    PUT = "PUT"
    GET = "GET"
    DELETE = "DELETE"


@dataclass(frozen=True)
class LoadMix:
    classes: tuple[SizeClass, ...]
    put_weight: float = 35.0
    get_weight: float = 50.0
    delete_weight: float = 15.0

    @property
    def max_stored_bytes(self) -> int:
        """The most the load can have committed at once (every key of every class, at its
        largest size)."""
        return sum(c.max_stored_bytes for c in self.classes)

    @property
    def largest_bytes(self) -> int:
        return max(c.high_bytes for c in self.classes)

    def draw_kind(self, rng: random.Random) -> OpKind:
        kinds = (OpKind.PUT, OpKind.GET, OpKind.DELETE)
        weights = (self.put_weight, self.get_weight, self.delete_weight)
        return rng.choices(kinds, weights)[0]

    def draw_class(self, rng: random.Random) -> SizeClass:
        return rng.choices(self.classes, [c.weight for c in self.classes])[0]


@dataclass(frozen=True)
class Version:
    md5_hex: str
    size_bytes: int


# One possible state of a key: a committed version, or None for "no object".
State = Version | None
Verdict = Literal["ok", "lost", "mismatch"]


def judge_read(possible: frozenset[State], got: State) -> Verdict:
    """What a GET answer (a version read in full, or None for 404) says about the store."""
    if got in possible:
        return "ok"
    return "lost" if got is None else "mismatch"


@dataclass
class Model:
    """The committed state of every key the load uses, as far as the answers prove it.

    Only one operation per key is in flight at a time (``claim``/``release``), so an answer
    always refers to the state the operation started from.
    """

    mix: LoadMix
    _states: dict[str, frozenset[State]] = field(default_factory=dict)
    _busy: set[str] = field(default_factory=set)

    def possible(self, key: str) -> frozenset[State]:
        return self._states.get(key, frozenset({None}))

    def certainly_committed(self, key: str) -> bool:
        return None not in self.possible(key)

    def may_exist(self, key: str) -> bool:
        return self.possible(key) != frozenset({None})

    def settle(self, key: str, state: State) -> None:
        """A clean answer proved the key's state."""
        self._states[key] = frozenset({state})

    def widen(self, key: str, state: State) -> None:
        """An answer was lost: the operation may or may not have taken effect."""
        self._states[key] = self.possible(key) | {state}

    def claim(self, rng: random.Random, size_class: SizeClass, existing: bool) -> str | None:
        """A key of ``size_class`` that no other operation holds (one that may exist, if
        ``existing``), now held by the caller until ``release``; None if there is none."""
        keys = [size_class.key(i) for i in range(size_class.keys)]
        free = [k for k in keys if k not in self._busy and (not existing or self.may_exist(k))]
        if not free:
            return None
        key = rng.choice(free)
        self._busy.add(key)
        return key

    def claim_key(self, key: str) -> None:
        """Holds ``key``, which nothing else may hold (seeding and the audit run alone)."""
        assert key not in self._busy, f"{key} is already held"
        self._busy.add(key)

    def release(self, key: str) -> None:
        self._busy.discard(key)

    def existing_keys(self) -> list[str]:
        return sorted(k for k in self._states if self.may_exist(k))

    def committed_bytes(self) -> int:
        """Bytes of the keys whose state is known (uncertain keys are left out)."""
        return sum(
            state.size_bytes
            for states in self._states.values()
            if len(states) == 1
            for state in states
            if state is not None
        )


def choose_op(
    mix: LoadMix, model: Model, rng: random.Random
) -> tuple[OpKind, SizeClass, str] | None:
    """The next operation and the key it holds. GET and DELETE pick a key that may exist and
    fall back to a PUT when the class has none; None when every key of the class is busy."""
    kind = mix.draw_kind(rng)
    size_class = mix.draw_class(rng)
    if kind is not OpKind.PUT:
        key = model.claim(rng, size_class, existing=True)
        if key is not None:
            return kind, size_class, key
        kind = OpKind.PUT
    key = model.claim(rng, size_class, existing=False)
    return None if key is None else (kind, size_class, key)
