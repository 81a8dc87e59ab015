"""Conditional requests on objects: ``If-Match``, ``If-None-Match``, ``If-Modified-Since`` and
``If-Unmodified-Since`` on GET and HEAD (and their ``x-amz-copy-source-if-*`` twins on a copy's
source), in RFC 9110 §13.2.2's order, which is also what S3 documents: an ``If-Match`` that
holds overrides a failing ``If-Unmodified-Since``, an ``If-None-Match`` that fails (the ETag
matches) overrides an ``If-Modified-Since`` that holds.

Last-Modified has whole seconds on the wire, so dates compare against the object's time cut
to the second; a date that does not parse is ignored, as RFC 9110 asks. On a PUT, only
``If-None-Match: *`` (create-only) and an ``If-Match`` of one ETag (or ``*``) are conditions
the commit transaction can decide; anything else is refused rather than ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from enum import Enum

from diststorage.core.errors import NotImplementedFeature, PreconditionFailed
from diststorage.meta import ObjectInfo

FAILED = "At least one of the pre-conditions you specified did not hold"


class Verdict(Enum):
    PROCEED = "proceed"
    NOT_MODIFIED = "not-modified"


@dataclass(frozen=True, slots=True)
class ConditionHeaders:
    """The four header names a set of conditions is read from."""

    if_match: str
    if_none_match: str
    if_modified_since: str
    if_unmodified_since: str


READ_CONDITIONS = ConditionHeaders(
    "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since"
)
COPY_SOURCE_CONDITIONS = ConditionHeaders(
    "x-amz-copy-source-if-match",
    "x-amz-copy-source-if-none-match",
    "x-amz-copy-source-if-modified-since",
    "x-amz-copy-source-if-unmodified-since",
)


@dataclass(frozen=True, slots=True)
class WriteConditions:
    """What a PUT's conditions ask of its commit: ``create_only`` (``If-None-Match: *``) and
    ``if_match`` (an unquoted ETag or ``*``, for ``PutOperation.if_match``)."""

    create_only: bool
    if_match: str | None


def entity_tags(value: str) -> list[str]:
    """The ETags of an ``If-Match`` / ``If-None-Match`` list, unquoted, weakness dropped
    (``*`` stays ``*``)."""
    tags = []
    for part in value.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        tag = tag.strip('"')
        if tag:
            tags.append(tag)
    return tags


def http_date(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo is not None else None


def evaluate(
    headers: Mapping[str, str], info: ObjectInfo, names: ConditionHeaders = READ_CONDITIONS
) -> Verdict:
    """Whether a read of the object goes ahead; PreconditionFailed (412) when a condition of
    state fails, NOT_MODIFIED (304) when the representation has not changed."""
    modified = info.created_at.replace(microsecond=0)
    if_match = headers.get(names.if_match)
    if if_match is not None:
        if not _matches(if_match, info.etag):
            raise PreconditionFailed(FAILED)
    else:
        since = http_date(headers.get(names.if_unmodified_since))
        if since is not None and modified > since:
            raise PreconditionFailed(FAILED)
    if_none_match = headers.get(names.if_none_match)
    if if_none_match is not None:
        return Verdict.NOT_MODIFIED if _matches(if_none_match, info.etag) else Verdict.PROCEED
    since = http_date(headers.get(names.if_modified_since))
    if since is not None and modified <= since:
        return Verdict.NOT_MODIFIED
    return Verdict.PROCEED


def write_conditions(headers: Mapping[str, str]) -> WriteConditions:
    """A PUT's (or a copy's destination's) conditions; NotImplementedFeature for those S3
    does not offer on writes."""
    if_none_match = headers.get("If-None-Match")
    if if_none_match is not None and if_none_match.strip() != "*":
        raise NotImplementedFeature("a write takes If-None-Match: * only")
    if_match = headers.get("If-Match")
    tag = None
    if if_match is not None:
        tags = entity_tags(if_match)
        if len(tags) != 1:
            raise NotImplementedFeature("a write takes an If-Match of one ETag")
        tag = tags[0]
    return WriteConditions(create_only=if_none_match is not None, if_match=tag)


def _matches(value: str, etag: str) -> bool:
    tags = entity_tags(value)
    return "*" in tags or etag in tags
