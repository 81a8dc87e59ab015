"""What the pipelines need from the parts around them, as small Protocols.

The pipelines take these through their constructors and never reach into the concrete
classes behind them (``NodeClients``, ``Inventory``, ``Janitor``), so that tests hand them the
fakes of ``diststorage.testing`` and a second front end builds them the same way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from diststorage.gateway.nodeclient import BlockPiece
from diststorage.meta import ChunkRef, NodeLiveness, SegmentLayout, StoredChecksum
from diststorage.placement import Candidate


class ByteSource(Protocol):
    """A body to store: the HTTP request's (``http/body.py``), or any other front end's."""

    async def read_up_to(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only at the end of the body, b"" after it.

        Raises BodyLengthMismatch when the body ends short of its announced length, and
        ClientGone when the client disconnects.
        """
        ...


class ChecksumSource(Protocol):
    """A body that computed the flexible checksum its client asked for (S3), once read to
    its end: the writer keeps it with the object."""

    def stored_checksum(self) -> StoredChecksum | None: ...


class StoredBytes(Protocol):
    """A node's answer to a finished chunk: how many bytes it stored."""

    @property
    def size_bytes(self) -> int: ...


class ChunkStream(Protocol):
    """One chunk being streamed to its node (``nodeclient.ChunkUpload``, or
    ``LinkChunkUpload`` over the node's data link).

    ``send`` each block with its CRC-32C, then ``finish``; ``cancel`` after any failure or
    cancellation, which makes the node discard what it received. ``send`` and ``finish`` raise
    core errors (NodeUnavailable, InsufficientStorage, ...) and each has its own deadline.
    """

    async def send(self, block: bytes, crc32c: int) -> None: ...

    async def finish(self) -> StoredBytes: ...

    def cancel(self) -> None: ...


class NodeWriter(Protocol):
    """One storage node as writes use it (``nodeclient.NodeClient``)."""

    async def start_put(self, chunk_id: str, expected_bytes: int) -> ChunkStream: ...

    async def put_once(self, chunk_id: str, data: bytes, crc32c: int) -> StoredBytes:
        """Stores a chunk of one block in one round trip."""
        ...


class NodeReader(Protocol):
    """One storage node as reads use it (``nodeclient.NodeClient``).

    Each block must arrive within the block timeout (times ``patience``); late blocks raise
    TimeoutError or NodeUnavailable, and a missing chunk ChunkNotFound.
    """

    def read(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]: ...

    def read_once(
        self,
        chunk_id: str,
        offset: int,
        length: int,
        wait_for_ready: bool = False,
        patience: float = 1.0,
    ) -> AsyncIterator[BlockPiece]: ...


class NodeWriters(Protocol):
    def get(self, node_id: str) -> NodeWriter | None:
        """The node's client; None for a node no longer known."""
        ...


class NodeReaders(Protocol):
    def get(self, node_id: str) -> NodeReader | None:
        """The node's client; None for a node no longer known."""
        ...


class WritableNodes(Protocol):
    """Where new chunks may go, and the bookkeeping of what was put there (``Inventory``)."""

    def writable_candidates(self) -> list[Candidate]: ...

    def member_count(self) -> int:
        """Nodes that belong to the cluster for good, writable now or not."""
        ...

    def used_share(self, node_id: str) -> float: ...

    def note_used(self, node_id: str, size_bytes: int) -> None: ...


class ClusterWidth(Protocol):
    """How many nodes a policy can count on (``Inventory``)."""

    def writable_count(self) -> int: ...

    def member_count(self) -> int: ...


class NodeStates(Protocol):
    """How a reader ranks nodes (``Inventory``)."""

    def state(self, node_id: str) -> NodeLiveness: ...

    def is_up(self, node_id: str) -> bool: ...


class ChunkDeleter(Protocol):
    """Deletes chunks no object needs (``Janitor``)."""

    async def delete_now(self, refs: Sequence[ChunkRef]) -> list[ChunkRef]:
        """Deletes the chunks from their nodes; returns those that could not be deleted."""
        ...

    def delete_after_reads(self, object_id: str, refs: Sequence[ChunkRef]) -> None:
        """Deletes a dropped object version's chunks once no download of it runs here."""
        ...


class DamageSink(Protocol):
    def report(self, chunk_id: str) -> None:
        """Marks the chunk damaged and queues its segment for repair, off the request path."""
        ...


class ReadFaults(Protocol):
    """Where a reader tells what went wrong (``datapath.NodeStats``): for the metrics and the
    dashboard's node table, never for decisions."""

    def crc_error(self, node_id: str) -> None:
        """A block from the node failed verification (or the node found it corrupt)."""
        ...

    def degraded_read(self) -> None:
        """A segment was read with a shard other than its data shards."""
        ...


class SegmentLayouts(Protocol):
    """Where a reader finds a segment's chunks as they are now (``MaintenanceStore``)."""

    async def segment_layout(self, object_id: str, segment_index: int) -> SegmentLayout | None:
        """The committed segment's chunks; None once the object is gone."""
        ...


class Penalties(Protocol):
    def penalize(self, node_id: str) -> None: ...

    def is_penalized(self, node_id: str) -> bool: ...


class ReadTracker(Protocol):
    """Which object versions downloads are reading (``ActiveReads``), so that a version
    dropped meanwhile keeps its chunks until they are done."""

    def reading(self, object_id: str) -> AbstractContextManager[None]: ...


BodyWrapper = Callable[[str, ByteSource], tuple[ByteSource, ChecksumSource]]
"""Wraps a body so that reading it computes the flexible checksum of the algorithm named (S3's
name: CRC32, ...), handed to the writer beside it: how a part that came without one (a copied
part, a client that sent none) gets the checksum its upload was created with."""
