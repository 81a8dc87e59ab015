"""Metadata at scale: lookups and listings as the store grows (python -m bench.meta_scale)."""
