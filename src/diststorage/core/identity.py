"""A process identity that persists in its data folder across restarts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from diststorage.core.ids import is_valid_id, new_id


def load_or_create_identity(path: Path) -> str:
    """The id stored at ``path``; a new one is written atomically on first use."""
    if path.exists():
        stored = json.loads(path.read_text())["id"]
        if not isinstance(stored, str) or not is_valid_id(stored):
            raise ValueError(f"{path} holds no valid id")
        return stored
    identity = new_id()
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    with temp.open("w") as handle:
        json.dump({"id": identity}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    temp.replace(path)
    return identity
