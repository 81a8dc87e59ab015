"""A process identity that persists in its data folder across restarts.

One implementation for both daemons, which store it under different keys (kept, so existing
data folders stay readable): a node's ``node.json`` holds ``{"node_id": …}``, a gateway's
``gateway.json`` holds ``{"id": …}``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from diststorage.core.durable import replace_durably
from diststorage.core.errors import DataLoss
from diststorage.core.filemodes import make_private_dir
from diststorage.core.ids import is_valid_id, new_id

log = logging.getLogger(__name__)


def load_or_create_identity(path: Path, key: str = "id") -> str:
    """The id stored under ``key`` in the JSON file at ``path``; on first use a new one is
    created and made durable (file and directory fsynced) before it is returned.

    Blocks (file I/O). Raises DataLoss if the file exists but holds no valid id: a process
    must never take a new identity silently, since its data is known by the old one.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return _create(path, key)
    try:
        stored = json.loads(raw)[key]
    except (ValueError, KeyError, TypeError) as exc:
        raise DataLoss(f"{path} is unreadable: {exc!r}") from exc
    if not isinstance(stored, str) or not is_valid_id(stored):
        raise DataLoss(f"{path} holds no valid id")
    return stored


def _create(path: Path, key: str) -> str:
    identity = new_id()
    make_private_dir(path.parent)
    replace_durably(path, json.dumps({key: identity}).encode() + b"\n")
    log.info("created identity %s in %s", identity, path)
    return identity
