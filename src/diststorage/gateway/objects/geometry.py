"""Where an object's bytes live: stripes, segments and blocks. Pure arithmetic."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Geometry:
    size_bytes: int
    stripe_size_bytes: int
    segment_stripes: int

    @property
    def stripe_count(self) -> int:
        return -(-self.size_bytes // self.stripe_size_bytes)

    @property
    def segment_count(self) -> int:
        return -(-self.stripe_count // self.segment_stripes)

    def stripe_length(self, stripe: int) -> int:
        start = stripe * self.stripe_size_bytes
        return min(self.stripe_size_bytes, self.size_bytes - start)

    def segment_of(self, stripe: int) -> int:
        return stripe // self.segment_stripes

    def segment_stripe_range(self, segment: int) -> range:
        first = segment * self.segment_stripes
        return range(first, min(first + self.segment_stripes, self.stripe_count))

    def stripes_for(self, start: int, end: int) -> range:
        """Stripes that hold the bytes [start, end)."""
        if end <= start:
            return range(0)
        return range(start // self.stripe_size_bytes, (end - 1) // self.stripe_size_bytes + 1)
