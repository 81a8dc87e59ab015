"""S3-style key listings: the committed keys under a prefix that sort after a start point, with
a delimiter's common prefixes rolled up, one page at a time, in byte order.

The cost is what shapes this module: a "folder" of a million keys costs one index seek, never a
walk over its keys. A page is a loop of small range reads on the partial index
``uq_objects_committed_key`` (namespace_id, key) WHERE state = 'committed':

- keys holding no delimiter after the prefix come back in batches, in key order;
- a key that holds one names a common prefix (the key up to the end of the delimiter's first
  occurrence after the prefix). The page records it, and the next read starts at the prefix's
  upper bound, past every key under it: Garage's ``SkipTo`` (src/api/s3/list.rs), in SQL. Rows
  of the same batch under that prefix are passed over.

Without a delimiter a page is one read. With one, nothing tells in advance where the next
folder starts, so a batch is GROWTH times as long as the run of plain keys the one before it
held (PROBE_ROWS after a jump): the rows read under a folder and thrown away stay within a
small multiple of the page's size. A page of a thousand folders reads two rows per folder, not
a thousand; a page of a thousand plain keys takes six reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, Row, Select, bindparam, select
from sqlalchemy.orm import Session

from diststorage.meta.base import INFO_COLUMNS, IS_COMMITTED, object_info
from diststorage.meta.models import OBJECTS
from diststorage.meta.records import KeyPage, ObjectInfo

# The batch after a jump past a common prefix (and the first one of a page with a delimiter):
# the next entry, and one row more to see whether a run of plain keys follows it.
PROBE_ROWS = 2
# The next batch is this many times the plain keys the last one held: reads per page stay
# few (2, 8, 32, 128, 512 rows...) while the rows read under a common prefix and thrown away
# stay below this many times the page's plain keys, plus PROBE_ROWS per common prefix.
GROWTH = 4

# The two statements a listing runs, built once (see store.py on why). The committed state is
# written into the SQL (base.IS_COMMITTED), so both backends prove the partial index applies.
RANGE_READ: Select[*tuple[Any, ...]] = (
    select(*INFO_COLUMNS)
    .where(
        OBJECTS.c.namespace_id == bindparam("namespace_id"),
        IS_COMMITTED,
        OBJECTS.c.key >= bindparam("lower"),
    )
    .order_by(OBJECTS.c.key)
    .limit(bindparam("rows", type_=Integer))
)
BOUNDED_RANGE_READ = RANGE_READ.where(OBJECTS.c.key < bindparam("upper"))

_Entry = ObjectInfo | bytes  # an object, or a common prefix


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix`` (None when
    there is none: the prefix is empty or all 0xff)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


@dataclass(frozen=True, slots=True)
class ListingScope:
    """What a listing rolls up: keys under ``prefix``, grouped at ``delimiter`` (empty: no
    grouping). Byte strings, as the keys are stored."""

    prefix: bytes
    delimiter: bytes

    @property
    def upper(self) -> bytes | None:
        return prefix_upper_bound(self.prefix)

    def common_prefix(self, key: bytes) -> bytes | None:
        """The common prefix ``key`` rolls up into, or None when it is listed as itself (no
        delimiter after the prefix). ``key`` starts with the prefix."""
        if not self.delimiter:
            return None
        at = key.find(self.delimiter, len(self.prefix))
        if at < 0:
            return None
        return key[: at + len(self.delimiter)]

    def first_key(self, start_after: bytes) -> bytes | None:
        """The smallest key the listing may hold, for a listing of the keys after
        ``start_after`` (empty: from the start); None when no key can follow.

        A ``start_after`` that is itself one of this listing's common prefixes (a page ended
        on it) skips every key under it, else the next page would hold it again."""
        if not start_after or start_after < self.prefix:
            lower = self.prefix
        elif start_after.startswith(self.prefix) and self.common_prefix(start_after) == start_after:
            lower_or_none = prefix_upper_bound(start_after)
            if lower_or_none is None:
                return None
            lower = lower_or_none
        else:
            # The smallest byte string greater than start_after.
            lower = start_after + b"\x00"
        upper = self.upper
        if upper is not None and lower >= upper:
            return None
        return lower

    def gather(
        self, batch: Sequence[Row[Any]], entries: list[_Entry], want: int
    ) -> tuple[bytes | None, int]:
        """Adds the batch's entries to ``entries`` until it holds ``want``. Returns where the
        next read starts (None: nothing can follow) and how many plain keys the batch held."""
        lower: bytes | None = None
        skip_below: bytes | None = None
        plain = 0
        for row in batch:
            key: bytes = row.key
            if skip_below is not None and key < skip_below:
                continue  # under the common prefix just recorded
            folder = self.common_prefix(key)
            if folder is None:
                entries.append(object_info(row))
                plain += 1
                lower = key + b"\x00"
            else:
                entries.append(folder)
                skip_below = lower = prefix_upper_bound(folder)
                if lower is None:
                    return None, plain
            if len(entries) == want:
                break
        return lower, plain


def key_page(
    session: Session,
    namespace_id: int,
    scope: ListingScope,
    start_after: bytes,
    limit: int,
) -> KeyPage:
    """One page of at most ``limit`` entries (objects and common prefixes together) of the
    keys in ``scope`` after ``start_after`` (see ListingScope.first_key)."""
    lower = scope.first_key(start_after) if limit > 0 else None
    upper = scope.upper
    entries: list[_Entry] = []
    want = limit + 1  # one entry past the page tells whether the page is truncated
    rows = PROBE_ROWS if scope.delimiter else want
    while lower is not None and len(entries) < want:
        asked = min(rows, want - len(entries))
        batch = _read_range(session, namespace_id, lower, upper, asked)
        lower, plain = scope.gather(batch, entries, want)
        if len(batch) < asked:
            break  # the range holds nothing more
        rows = max(PROBE_ROWS, GROWTH * plain)
    return _page(entries, limit)


def _read_range(
    session: Session, namespace_id: int, lower: bytes, upper: bytes | None, rows: int
) -> Sequence[Row[Any]]:
    """The first ``rows`` committed objects with keys in [lower, upper), in key order."""
    params: dict[str, Any] = {"namespace_id": namespace_id, "lower": lower, "rows": rows}
    if upper is None:
        return session.execute(RANGE_READ, params).all()
    return session.execute(BOUNDED_RANGE_READ, params | {"upper": upper}).all()


def _page(entries: list[_Entry], limit: int) -> KeyPage:
    shown = entries[:limit]
    truncated = len(entries) > limit
    next_start_after: str | None = None
    if truncated:
        last = shown[-1]
        next_start_after = last.key if isinstance(last, ObjectInfo) else last.decode()
    return KeyPage(
        objects=tuple(e for e in shown if isinstance(e, ObjectInfo)),
        common_prefixes=tuple(e.decode() for e in shown if isinstance(e, bytes)),
        truncated=truncated,
        next_start_after=next_start_after,
    )
