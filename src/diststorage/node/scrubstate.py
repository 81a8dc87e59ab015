"""The scrubber's progress on disk, so that a restarted node resumes its pass.

Without it, a node restarted more often than a pass lasts (a pass over a full disk at the
default rate takes a day or more) would verify its low chunk ids again and again and its high
ones never. The file is advisory: a missing or damaged one only means a pass starts over.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from diststorage.core.filemodes import open_private_file
from diststorage.core.ids import is_valid_id

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ScrubState:
    cursor: str = ""
    """The last chunk id the pass under way has dealt with; empty when no pass is under way."""
    last_pass_finished: float = 0.0
    """Seconds since the epoch when the last full pass ended; 0 if none ever did."""


def load_scrub_state(path: Path) -> ScrubState:
    """Blocking. A fresh state when there is no file or it cannot be understood."""
    try:
        raw = json.loads(path.read_bytes())
        cursor, finished = raw["cursor"], raw["last_pass_finished"]
    except FileNotFoundError:
        return ScrubState()
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable scrub state %s: %r", path, exc)
        return ScrubState()
    if not isinstance(cursor, str) or (cursor and not is_valid_id(cursor)):
        log.warning("ignoring scrub state %s: bad cursor", path)
        return ScrubState()
    if not isinstance(finished, int | float) or finished < 0:
        finished = 0.0
    return ScrubState(cursor, float(finished))


def save_scrub_state(path: Path, state: ScrubState) -> None:
    """Blocking; replaces the file atomically. No fsync: a state lost in a crash costs
    re-verifying some chunks, and an fsync every save would compete with chunk writes."""
    temp = path.with_name(path.name + ".tmp")
    payload = {"cursor": state.cursor, "last_pass_finished": state.last_pass_finished}
    with open(open_private_file(temp, os.O_WRONLY | os.O_TRUNC), "wb") as handle:
        handle.write(json.dumps(payload).encode() + b"\n")
    os.replace(temp, path)
