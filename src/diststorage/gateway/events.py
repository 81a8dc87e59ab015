"""What happened lately on this gateway's watch: a bounded, in-memory list of cluster events
(node down and up, repair started and finished, corrupt chunks found, the workers' lease
moving), newest last, for the dashboard's Events screen.

It is this gateway's view since it started: nothing is persisted, and the oldest events drop
out once ``max_events`` are kept.
"""

from __future__ import annotations

import datetime
import enum
from collections import deque
from dataclasses import dataclass

from diststorage.core.clock import SYSTEM_CLOCK, Clock, utc_now

MAX_EVENTS = 500


class EventKind(enum.StrEnum):
    NODE_DOWN = "node down"
    NODE_SUSPECT = "node suspect"
    NODE_UP = "node up"
    REPAIR_STARTED = "repair started"
    REPAIR_FINISHED = "repair finished"
    CORRUPT_CHUNK = "corrupt chunk"
    LEADER_MOVED = "leader moved"


@dataclass(frozen=True, slots=True)
class Event:
    at: datetime.datetime
    kind: EventKind
    text: str
    node_id: str | None = None


class EventLog:
    def __init__(self, max_events: int = MAX_EVENTS, clock: Clock = SYSTEM_CLOCK) -> None:
        self._events: deque[Event] = deque(maxlen=max_events)
        self._clock = clock
        self.recorded = 0  # ever, including those that dropped out; watchers compare it

    def record(self, kind: EventKind, text: str, node_id: str | None = None) -> Event:
        event = Event(utc_now(self._clock), kind, text, node_id)
        self._events.append(event)
        self.recorded += 1
        return event

    def latest(self, limit: int) -> list[Event]:
        """The ``limit`` newest events, newest first."""
        return [self._events[-i] for i in range(1, min(limit, len(self._events)) + 1)]

    def __len__(self) -> int:
        return len(self._events)
