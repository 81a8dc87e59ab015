"""Generated identifiers. Chunk ids name files on nodes, so their shape is checked strictly."""

from __future__ import annotations

import re
import uuid

# fullmatch, not match with "$": "$" also matches before a final newline.
_HEX32 = re.compile(r"[0-9a-f]{32}")


def new_id() -> str:
    """A random 128-bit id as 32 lowercase hex digits."""
    return uuid.uuid4().hex


def is_valid_id(value: str) -> bool:
    return _HEX32.fullmatch(value) is not None
