"""Typed operations on objects: what a front end asks of the pipelines.

A front end (the native HTTP API in ``gateway/api``, later S3) parses each request once into
one of these plain values, with every validation error raised by its parser; the handlers and
pipelines then never look at a header again. Nothing here knows HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass

from diststorage.core.errors import InvalidRequest, RangeNotSatisfiable
from diststorage.core.policy import RedundancyPolicy
from diststorage.meta import NO_ATTRIBUTES, ObjectAttributes

# Width of the metadata's content_type column (meta.models).
MAX_CONTENT_TYPE_CHARS = 255


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int  # exclusive

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class RangeSpec:
    """One byte range as asked for, before the object's size is known.

    ``first``/``last`` are inclusive byte positions; a suffix range (the last N bytes) has no
    ``first`` and ``last`` = N, as in ``bytes=-N``. ``text`` is the range as the client wrote
    it, for error messages.
    """

    first: int | None
    last: int | None
    text: str

    def resolve(self, size: int) -> ByteRange:
        """The bytes selected from an object of ``size`` bytes.

        Raises RangeNotSatisfiable for a range that selects nothing of it.
        """
        if self.first is None:
            suffix = self.last or 0
            if suffix == 0 or size == 0:
                raise RangeNotSatisfiable(f"range {self.text} selects no bytes", size)
            return ByteRange(max(size - suffix, 0), size)
        end = size if self.last is None else self.last + 1
        if self.first >= size:
            raise RangeNotSatisfiable(f"range {self.text} starts past the {size}-byte object", size)
        return ByteRange(self.first, min(end, size))


def resolve_range(spec: RangeSpec | None, size: int) -> ByteRange | None:
    """The range against the object; None (the whole object) when none was asked for."""
    return None if spec is None else spec.resolve(size)


@dataclass(frozen=True, slots=True)
class PartOf:
    """Which part of which multipart upload a body is: stored as a part row of the upload
    (see ``ObjectState.PART``) instead of as the visible version of a key."""

    upload_id: str
    part_number: int


def check_content_type(content_type: str) -> None:
    """InvalidRequest for a Content-Type wider than the metadata column: PostgreSQL refuses a
    longer value (which surfaced as a 503 "metadata database error"), SQLite would store it."""
    if len(content_type) > MAX_CONTENT_TYPE_CHARS:
        raise InvalidRequest(
            f"Content-Type is {len(content_type)} characters; at most "
            f"{MAX_CONTENT_TYPE_CHARS} are allowed"
        )


@dataclass(frozen=True, slots=True)
class PutOperation:
    """Store a body under a key.

    ``requested_policy`` is None when the client left the choice to the gateway (see
    ``policy_choice``). ``replace`` False means create-only: AlreadyExists over a committed
    key. ``if_match`` (an unquoted ETag, or ``*``) commits only over the committed version
    with that ETag: PreconditionFailed otherwise. ``declared_size`` is None for a body of
    unknown length. ``attrs`` are kept with the object and handed back with it. With ``part``
    the body is a part of a multipart upload (``key`` is then the part's internal key, see
    ``meta.part_key``).
    """

    namespace: str
    key: str
    content_type: str
    requested_policy: RedundancyPolicy | None
    declared_size: int | None
    replace: bool
    if_match: str | None = None
    attrs: ObjectAttributes = NO_ATTRIBUTES
    part: PartOf | None = None

    def __post_init__(self) -> None:
        check_content_type(self.content_type)


@dataclass(frozen=True, slots=True)
class GetOperation:
    namespace: str
    key: str
    range: RangeSpec | None


@dataclass(frozen=True, slots=True)
class HeadOperation:
    """Like GET without the body: the headers a GET with the same range would answer."""

    namespace: str
    key: str
    range: RangeSpec | None


@dataclass(frozen=True, slots=True)
class DeleteOperation:
    namespace: str
    key: str


@dataclass(frozen=True, slots=True)
class ListOperation:
    """One page of committed keys starting with ``prefix``, after the key ``after``."""

    namespace: str
    prefix: str
    after: str
    limit: int


ObjectOperation = PutOperation | GetOperation | HeadOperation | DeleteOperation | ListOperation
