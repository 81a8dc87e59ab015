"""One page of a namespace's open multipart uploads (ListMultipartUploads), in (key, upload
id) order after the markers, keys past a delimiter rolled up into common prefixes.

A common prefix is jumped over whole: the next query starts at the smallest key above every
key that starts with it, so the uploads under a prefix cost one query per prefix, never a scan
of them. Each prefix counts once toward the page's size, as an upload does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Row, Select, and_, or_, select
from sqlalchemy.orm import Session

from diststorage.meta.listing import prefix_upper_bound
from diststorage.meta.multipart_models import MULTIPART_UPLOADS
from diststorage.meta.states import UploadState

_UPLOADS = MULTIPART_UPLOADS.c


@dataclass(frozen=True, slots=True)
class _Cursor:
    """Where the next query starts: after (``key``, ``upload_id``); after every upload of
    ``key`` when ``upload_id`` is None; at ``key`` itself when ``inclusive`` (a jump past a
    common prefix lands on its upper bound). No ``key``: from the start."""

    key: bytes | None = None
    upload_id: str | None = None
    inclusive: bool = False


@dataclass
class ListedUploads:
    rows: list[Row[Any]] = field(default_factory=list)
    common_prefixes: tuple[str, ...] = ()
    truncated: bool = False
    next_key_marker: str | None = None
    next_upload_id_marker: str | None = None


@dataclass
class _Page:
    rows: list[Row[Any]] = field(default_factory=list)
    prefixes: list[str] = field(default_factory=list)
    # The last entry taken: its key or common prefix, and its upload id (None for a prefix).
    last: tuple[str, str | None] | None = None

    @property
    def size(self) -> int:
        return len(self.rows) + len(self.prefixes)

    def done(self, truncated: bool) -> ListedUploads:
        listed = ListedUploads(self.rows, tuple(self.prefixes), truncated)
        if truncated and self.last is not None:
            listed.next_key_marker, listed.next_upload_id_marker = self.last
        return listed


class UploadListing:
    def __init__(self, namespace_id: int, prefix: str, delimiter: str, limit: int) -> None:
        self._namespace_id = namespace_id
        self._prefix = prefix
        self._delimiter = delimiter
        self._limit = limit

    def page(self, session: Session, key_marker: str, upload_id_marker: str) -> ListedUploads:
        cursor = self._start(key_marker, upload_id_marker)
        page = _Page()
        while cursor is not None:
            if page.size == self._limit:
                more = session.execute(self._query(cursor, 1)).first() is not None
                return page.done(truncated=more)
            asked = self._limit - page.size + 1
            batch = session.execute(self._query(cursor, asked)).all()
            cursor, jumped = self._take(batch, page, cursor)
            if not jumped and len(batch) < asked:
                return page.done(truncated=False)  # the rows ran out
        return page.done(truncated=False)

    def _take(
        self, batch: Sequence[Row[Any]], page: _Page, cursor: _Cursor
    ) -> tuple[_Cursor | None, bool]:
        """Takes rows of the batch into the page until it is full or a row rolls up into a
        common prefix; returns where to go on from (None: past the last possible key) and
        whether it jumped past a prefix."""
        for row in batch:
            if page.size == self._limit:
                return cursor, False
            key = row.key.decode()
            rolled = self._rolled_up(key)
            if rolled is not None:
                page.prefixes.append(rolled)
                page.last = (rolled, None)
                return self._past(rolled), True
            page.rows.append(row)
            page.last = (key, row.upload_id)
            cursor = _Cursor(row.key, row.upload_id)
        return cursor, False

    def _start(self, key_marker: str, upload_id_marker: str) -> _Cursor | None:
        if not key_marker:
            return _Cursor()
        if self._rolled_up(key_marker) == key_marker:
            # The marker is a common prefix a page ended on: go on after all of it.
            return self._past(key_marker)
        return _Cursor(key_marker.encode(), upload_id_marker or None)

    def _past(self, common_prefix: str) -> _Cursor | None:
        upper = prefix_upper_bound(common_prefix.encode())
        return None if upper is None else _Cursor(upper, inclusive=True)

    def _rolled_up(self, key: str) -> str | None:
        """The common prefix the key rolls up into, if any."""
        if not self._delimiter or not key.startswith(self._prefix):
            return None
        cut = key.find(self._delimiter, len(self._prefix))
        return None if cut < 0 else key[: cut + len(self._delimiter)]

    def _query(self, cursor: _Cursor, limit: int) -> Select[Any]:
        query = select(MULTIPART_UPLOADS).where(
            _UPLOADS.namespace_id == self._namespace_id, _UPLOADS.state == UploadState.OPEN
        )
        if self._prefix:
            query = query.where(_UPLOADS.key >= self._prefix.encode())
            upper = prefix_upper_bound(self._prefix.encode())
            if upper is not None:
                query = query.where(_UPLOADS.key < upper)
        if cursor.key is not None:
            if cursor.inclusive:
                query = query.where(_UPLOADS.key >= cursor.key)
            elif cursor.upload_id is None:
                query = query.where(_UPLOADS.key > cursor.key)
            else:
                query = query.where(
                    or_(
                        _UPLOADS.key > cursor.key,
                        and_(_UPLOADS.key == cursor.key, _UPLOADS.upload_id > cursor.upload_id),
                    )
                )
        return query.order_by(_UPLOADS.key, _UPLOADS.upload_id).limit(limit)
