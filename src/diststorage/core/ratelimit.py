"""A token bucket that hands out byte budgets; pure (the caller passes in the time).

The node's scrubber and the gateway's repair throttle (gateway/workers/throttle.py) both
meter their bytes through it."""

from __future__ import annotations


class TokenBucket:
    """At most ``burst_bytes + rate_bytes_per_s * T`` bytes are granted in any T seconds.

    ``reserve`` never refuses: it books the bytes at once (the balance may go negative) and
    says how long the caller must wait before using them. Booking up front, instead of waiting
    for a full balance, lets a request larger than the burst (one big block) through without a
    special case, at the price of that request's wait.
    """

    def __init__(self, rate_bytes_per_s: float, burst_bytes: float, now: float) -> None:
        assert rate_bytes_per_s > 0, "a bucket needs a positive rate"
        assert burst_bytes >= 0, "burst must not be negative"
        self.rate_bytes_per_s = rate_bytes_per_s
        self.burst_bytes = burst_bytes
        self._balance = float(burst_bytes)
        self._updated_at = now

    def reserve(self, nbytes: float, now: float) -> float:
        """Books nbytes; returns the seconds from ``now`` until they may be used (0 = at once)."""
        assert nbytes >= 0, "cannot reserve a negative amount"
        refill = max(now - self._updated_at, 0.0) * self.rate_bytes_per_s
        self._balance = min(self._balance + refill, float(self.burst_bytes)) - nbytes
        self._updated_at = now
        return max(-self._balance / self.rate_bytes_per_s, 0.0)
