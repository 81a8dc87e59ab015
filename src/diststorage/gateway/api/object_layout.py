"""``GET /_/objects/{key}/layout``: where an object's shards are and what state each is in,
a page of segments at a time (``?bucket=`` names the bucket; the native API's, ``default``,
when absent; ``?start=`` and ``?limit=`` the page).

The key is percent-encoded in the path and may hold anything, ``/`` and ``/layout`` included:
the route is the path's last ``/layout``, so ``objects/a/layout/layout`` is the key
``a/layout``. The answer is built from the same dict the dashboard's object page renders, so
the two never disagree::

    {"bucket", "key", "object_id", "size", "md5", "etag", "content_type", "redundancy",
     "last_modified", "stripe_size", "segment_stripes", "inline", "parts", "inline_parts",
     "segment_count", "start", "limit", "next_start",
     "segments": [{"part_index", "segment_index", "redundancy", "offset", "size", "stripes",
                   "total_shards", "needed_to_read", "usable_shards", "spare_nodes",
                   "full_spare_nodes",
                   "shards": [{"shard_index", "state", "chunk_id", "chunk_state", "size",
                               "node", "node_address", "node_state", "node_lifecycle"}]}]}

A shard's ``state`` is the one word a person needs, worst first: ``missing`` (no chunk
recorded), ``damaged`` (failed a checksum or lost from its disk), ``down`` (its node is down,
or no longer known), ``suspect`` (its node went quiet), ``draining`` (its node is being
emptied), ``moving`` (sound, to be moved), else ``ok``. A segment's ``spare_nodes`` is how
many more nodes it can lose and still be read, counted as ``/_/repair``'s
``fewest_spare_shards`` and the durability histogram count it
(``meta.durability.node_losses_survived``): shards that are damaged, or on a node not up and
active, do not count; negative when it is already unreadable.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from diststorage.core.errors import InvalidRequest
from diststorage.core.policy import parse_policy
from diststorage.gateway.api.documents import object_json
from diststorage.gateway.api.parse import decode_key
from diststorage.gateway.services import Services
from diststorage.gateway.workers.repair_plan import NodeHealth
from diststorage.meta import (
    DEFAULT_NAMESPACE,
    MAX_SEGMENTS_PER_PAGE,
    ChunkState,
    NodeLifecycle,
    NodeLiveness,
    PlacedChunk,
    PlacedSegment,
    SegmentPage,
)
from diststorage.meta.durability import node_losses_survived

LAYOUT_PREFIX = "objects/"
LAYOUT_SUFFIX = "/layout"
DEFAULT_SEGMENTS_PER_PAGE = 100
_DIGITS = re.compile(r"0*([0-9]{1,9})")
MAX_SEGMENT_START = 10**9


@dataclass(frozen=True, slots=True)
class LayoutQuery:
    bucket: str
    key: str
    start: int = 0
    limit: int = DEFAULT_SEGMENTS_PER_PAGE


def layout_path_key(system_path: str) -> str | None:
    """The encoded key of ``objects/{key}/layout`` (what follows ``/_/``); None for any
    other path."""
    if not system_path.startswith(LAYOUT_PREFIX):
        return None
    rest = system_path.removeprefix(LAYOUT_PREFIX)
    return rest.removesuffix(LAYOUT_SUFFIX) if rest.endswith(LAYOUT_SUFFIX) else None


def parse_layout_query(encoded_key: str, query: Mapping[str, str]) -> LayoutQuery:
    """Raises InvalidKey for a key that is not 1–1024 bytes of percent-encoded UTF-8,
    InvalidRequest for a bad page."""
    return LayoutQuery(
        bucket=query.get("bucket") or DEFAULT_NAMESPACE,
        key=decode_key(encoded_key),
        start=query_number(query, "start", 0, MAX_SEGMENT_START, 0),
        limit=query_number(query, "limit", 1, MAX_SEGMENTS_PER_PAGE, DEFAULT_SEGMENTS_PER_PAGE),
    )


def query_number(query: Mapping[str, str], name: str, low: int, high: int, default: int) -> int:
    """A whole number from ``low`` to ``high`` in the query (``default`` when absent); raises
    InvalidRequest otherwise."""
    text = query.get(name)
    if text is None:
        return default
    # ASCII digits only, and never more of them than int() takes.
    digits = _DIGITS.fullmatch(text)
    if digits is None or not low <= int(digits[1]) <= high:
        raise InvalidRequest(f"{name} must be a whole number from {low} to {high}")
    return int(digits[1])


async def object_layout(services: Services, query: LayoutQuery) -> dict[str, Any]:
    """The layout document (see the module's docstring). Raises ObjectNotFound."""
    page = await services.store.placement.segment_page(
        query.bucket, query.key, query.start, query.limit
    )
    return layout_json(services, query, page)


def layout_json(services: Services, query: LayoutQuery, page: SegmentPage) -> dict[str, Any]:
    info = page.info
    return {
        "bucket": query.bucket,
        **object_json(info),
        "object_id": info.object_id,
        "stripe_size": info.stripe_size_bytes,
        "segment_stripes": info.segment_stripes,
        "inline": page.inline,
        "parts": info.part_count,
        "inline_parts": page.inline_parts,
        "segment_count": page.segment_count,
        "start": page.start,
        "limit": query.limit,
        "next_start": page.next_start,
        "segments": [_segment_json(services, s) for s in page.segments],
    }


def _segment_json(services: Services, segment: PlacedSegment) -> dict[str, Any]:
    policy = parse_policy(segment.policy)
    by_shard = {c.shard_index: c for c in segment.chunks}
    # Every shard the policy has, and any other index a chunk was recorded under.
    indices = sorted(set(range(policy.total_shards)) | set(by_shard))
    usable: dict[str, set[int]] = {}
    for chunk in segment.chunks:
        if _usable(services, chunk):
            usable.setdefault(chunk.node_id, set()).add(chunk.shard_index)
    return {
        "part_index": segment.part_index,
        "segment_index": segment.segment_index,
        "redundancy": segment.policy,
        "offset": segment.offset_bytes,
        "size": segment.size_bytes,
        "stripes": segment.stripe_count,
        "total_shards": policy.total_shards,
        "needed_to_read": policy.needed_to_read,
        "usable_shards": len(set[int]().union(*usable.values())),
        "spare_nodes": node_losses_survived(usable, policy.needed_to_read),
        "full_spare_nodes": policy.total_shards - policy.needed_to_read,
        "shards": [_shard_json(services, i, by_shard.get(i)) for i in indices],
    }


def _usable(services: Services, chunk: PlacedChunk) -> bool:
    """Counts towards the segment's spare: as repair judges it (``repair_status``)."""
    return (
        chunk.state != ChunkState.DAMAGED
        and services.repair.health(chunk.node_id) == NodeHealth.HEALTHY
    )


def _shard_json(services: Services, shard_index: int, chunk: PlacedChunk | None) -> dict[str, Any]:
    if chunk is None:
        return {
            "shard_index": shard_index,
            "state": "missing",
            "chunk_id": None,
            "chunk_state": "missing",
            "size": None,
            "node": None,
            "node_address": None,
            "node_state": None,
            "node_lifecycle": None,
        }
    inventory = services.inventory
    known = inventory.knows(chunk.node_id)
    node_state = inventory.state(chunk.node_id).value if known else "unknown"
    lifecycle = inventory.lifecycle(chunk.node_id).value if known else None
    return {
        "shard_index": shard_index,
        "state": shard_state(chunk.state, node_state, lifecycle),
        "chunk_id": chunk.chunk_id,
        "chunk_state": chunk.state,
        "size": chunk.size_bytes,
        "node": chunk.node_id,
        "node_address": inventory.address_of(chunk.node_id),
        "node_state": node_state,
        "node_lifecycle": lifecycle,
    }


def shard_state(chunk_state: str, node_state: str, lifecycle: str | None) -> str:
    """The one word for a recorded shard, worst first (see the module's docstring)."""
    if chunk_state == ChunkState.DAMAGED:
        return "damaged"
    if node_state in (NodeLiveness.DOWN, "unknown"):
        return "down"
    if node_state == NodeLiveness.SUSPECT:
        return "suspect"
    if lifecycle == NodeLifecycle.DRAINING:
        return "draining"
    if chunk_state == ChunkState.MOVE:
        return "moving"
    return "ok"
