"""Chaos benchmark: mixed load while nodes are killed and paused, then repair (python -m bench.chaos)."""
