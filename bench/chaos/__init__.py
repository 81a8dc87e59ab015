"""Chaos benchmark: mixed load while nodes are killed and paused, then repair.

Run with ``python -m bench.chaos``."""
