"""The states an object, a chunk and a node can be in, as the metadata database records them.

``StrEnum``s so that each compares and stores as its plain string (the columns hold text), while
code names a state by its type and a typo is an attribute error rather than a row that matches
nothing.
"""

from __future__ import annotations

from enum import StrEnum

# The namespace of every object until buckets bring more of them.
DEFAULT_NAMESPACE = "default"


class ObjectState(StrEnum):
    """``pending`` while its upload runs, ``committed`` once visible. A ``part`` is a stored
    part of a multipart upload: durable like a committed object (repaired, scrubbed, audited)
    but never listed or read by key; it belongs to its upload, then to the object completed
    from it."""

    PENDING = "pending"
    COMMITTED = "committed"
    PART = "part"


class UploadState(StrEnum):
    """A multipart upload: ``open`` while parts may come, then ``completed`` (the object
    exists) or ``aborted``; the finished row is kept a while so a retried Complete or Abort
    gets the same answer."""

    OPEN = "open"
    COMPLETED = "completed"
    ABORTED = "aborted"


class ChunkState(StrEnum):
    """A damaged chunk failed a checksum or went missing: never read again, rebuilt elsewhere.
    A chunk to move is sound but should live on another node (drain, rebalance, two shards of a
    segment on one node); repair copies it and then drops it."""

    OK = "ok"
    DAMAGED = "damaged"
    MOVE = "move"


class NodeLifecycle(StrEnum):
    """Set by an operator. Draining nodes take no new chunks and repair moves every chunk off
    them. A pending node is one that heartbeated while the cluster admits new nodes only by
    an operator's acceptance (``--node-admission manual``): it is listed, but gets no chunks
    and counts as no member, live or writable node until accepted (then active). Rows from
    before pending existed are active or draining: a node the cluster already knew stays
    admitted."""

    ACTIVE = "active"
    DRAINING = "draining"
    PENDING = "pending"


class NodeLiveness(StrEnum):
    """What a gateway makes of a node's heartbeats: ``suspect`` after a few silent seconds (no
    new writes, read last), ``down`` after the node timeout. Kept in memory, never stored: each
    gateway hears the heartbeats itself."""

    UP = "up"
    SUSPECT = "suspect"
    DOWN = "down"


class KeyState(StrEnum):
    """A disabled key is refused like an unknown one, but kept with its grants, so enabling it
    again restores what it could do."""

    ACTIVE = "active"
    DISABLED = "disabled"
