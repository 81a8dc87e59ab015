"""How far the stored stripes are from loss, for the repair backlog and the durability
histogram. Statements over a session, run by MaintenanceStore's operations.

Only the at-risk segments are examined one by one: those queued for repair, and those with a
chunk on a node that is not healthy right now. A damaged chunk is queued in the transaction that
marks it (``mark_chunks``) and stays queued until repair replaces it, so the queue covers damaged
chunks too. Every other stored stripe has all its shards, on distinct healthy nodes: its spare is
its policy's full one, so the histogram's full bar is the policy's total stripes (``stripe_totals``,
one aggregate over the objects, which callers cache) minus its at-risk stripes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, case, func, select, union
from sqlalchemy.orm import Session

from diststorage.core.policy import INLINE_POLICY, parse_policy
from diststorage.meta.base import IS_STORED, segment_stripe_count
from diststorage.meta.models import ChunkRow, ObjectRow, RepairTask
from diststorage.meta.records import SpareStripes, StripeTotals
from diststorage.meta.states import ChunkState

# Rows that own chunks or an inline body: a multipart object's row has neither (its parts,
# stored rows of their own, hold its bytes), so counting it too would count its bytes twice.
_OWNS_ITS_BYTES = ObjectRow.part_count == 0


@dataclass(frozen=True, slots=True)
class AtRiskSegment:
    policy: str
    stripes: int
    # Further node losses it survives and stays readable; negative: short of that many shards.
    spare: int


def at_risk_segments(session: Session, unavailable_nodes: Sequence[str]) -> list[AtRiskSegment]:
    """Every stored segment queued for repair or with a chunk on an unavailable node, with its
    spare counted in nodes (``node_losses_survived``): the chunks on unavailable nodes and the
    damaged ones count as lost. A segment with no chunk row left counts as holding nothing.

    Counted in nodes, not shards: a segment written while nodes were down may hold two shards
    on one node, and losing that node costs both. Six shards of ec:4+2 on five nodes survive
    one more lost node, not two; counting shards said two, and a second fault then took such
    a segment below what a read needs."""
    unavailable = list(unavailable_nodes)
    at_risk = union(
        select(ChunkRow.object_id, ChunkRow.segment_index).where(ChunkRow.node_id.in_(unavailable)),
        select(RepairTask.object_id, RepairTask.segment_index),
    ).subquery()
    usable = and_(ChunkRow.node_id.not_in(unavailable), ChunkRow.state != ChunkState.DAMAGED)
    rows = session.execute(
        select(
            at_risk.c.object_id,
            at_risk.c.segment_index,
            ObjectRow.policy,
            ObjectRow.size_bytes,
            ObjectRow.stripe_size_bytes,
            ObjectRow.segment_stripes,
            ChunkRow.node_id,
            case((usable, ChunkRow.shard_index)),
        )
        .select_from(at_risk)
        .join(ObjectRow, ObjectRow.id == at_risk.c.object_id)
        .outerjoin(
            ChunkRow,
            and_(
                ChunkRow.object_id == at_risk.c.object_id,
                ChunkRow.segment_index == at_risk.c.segment_index,
            ),
        )
        .where(IS_STORED)
    )
    segments: dict[tuple[str, int], tuple[str, int, dict[str, set[int]]]] = {}
    for object_id, segment, policy, size, stripe, per_segment, node_id, shard in rows:
        key = (object_id, segment)
        if key not in segments:
            stripes = segment_stripe_count(size, stripe, per_segment, segment)
            segments[key] = (policy, stripes, {})
        by_node = segments[key][2]
        if node_id is not None:
            shards = by_node.setdefault(node_id, set())
            if shard is not None:
                shards.add(int(shard))
    # Each policy parsed once, not once per segment: a lost node queues thousands of segments.
    needed = {policy: parse_policy(policy).needed_to_read for policy, _, _ in segments.values()}
    return [
        AtRiskSegment(policy, stripes, node_losses_survived(by_node, needed[policy]))
        for policy, stripes, by_node in segments.values()
    ]


def spare_histogram(segments: Iterable[AtRiskSegment]) -> tuple[SpareStripes, ...]:
    """The segments grouped by (policy, spare), most at risk first."""
    counted: Counter[tuple[str, int]] = Counter()
    stripes: Counter[tuple[str, int]] = Counter()
    for segment in segments:
        counted[(segment.policy, segment.spare)] += 1
        stripes[(segment.policy, segment.spare)] += segment.stripes
    return tuple(
        SpareStripes(policy, spare, counted[(policy, spare)], stripes[(policy, spare)])
        for policy, spare in sorted(counted, key=lambda k: (k[1], k[0]))
    )


def stripe_totals(session: Session) -> StripeTotals:
    """Every stored stripe per policy, and the inline objects: one pass over the objects."""
    size, stripe = ObjectRow.size_bytes, ObjectRow.stripe_size_bytes
    stripes = (size + stripe - 1) // stripe
    rows = session.execute(
        select(ObjectRow.policy, func.count(), func.coalesce(func.sum(stripes), 0))
        .where(IS_STORED, _OWNS_ITS_BYTES)
        .group_by(ObjectRow.policy)
    )
    by_policy: dict[str, int] = {}
    inline = 0
    for policy, count, total in rows:
        if policy == INLINE_POLICY:
            inline = int(count)
        else:
            by_policy[policy] = int(total)
    return StripeTotals(by_policy, inline)


def node_losses_survived(shards_by_node: dict[str, set[int]], needed: int) -> int:
    """How many more nodes a segment can lose, worst case, and still be read: the nodes that
    hold the most of its distinct shards go first. Negative when it is already short by that
    many shards."""
    held = [shards for shards in shards_by_node.values() if shards]
    if sum(map(len, held)) == len(set().union(*held)):
        # No shard on two nodes (every layout but a move caught half-way): each node's loss
        # costs exactly its own shards, so the nodes holding the most go first. Thousands of
        # segments are at risk once a node is lost; this keeps each a sort of a few numbers.
        return _losses_without_copies(sorted(map(len, held), reverse=True), needed)
    left = {node: set(shards) for node, shards in shards_by_node.items() if shards}

    def distinct(nodes: Iterable[str]) -> set[int]:
        return set().union(*(left[n] for n in nodes))

    if len(distinct(left)) < needed:
        return len(distinct(left)) - needed
    lost = 0
    while left:
        # The node whose loss takes the most shards that no other node also holds.
        worst = max(left, key=lambda n: len(left[n] - distinct(o for o in left if o != n)))
        del left[worst]
        if len(distinct(left)) < needed:
            return lost
        lost += 1
    return lost


def _losses_without_copies(sizes_largest_first: Sequence[int], needed: int) -> int:
    """``node_losses_survived`` when no shard is on two nodes: the nodes' shard counts."""
    remaining = sum(sizes_largest_first)
    if remaining < needed:
        return remaining - needed
    lost = 0
    for size in sizes_largest_first:
        remaining -= size
        if remaining < needed:
            return lost
        lost += 1
    return lost
