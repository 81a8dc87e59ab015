"""S3's conditional headers, judged against an object: RFC 9110's order, whole-second dates,
unparseable dates ignored, ETag lists and weak tags, and the write conditions a commit can
decide (anything else refused, never ignored)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from diststorage.core.errors import NotImplementedFeature, PreconditionFailed
from diststorage.gateway.s3.conditions import (
    COPY_SOURCE_CONDITIONS,
    Verdict,
    entity_tags,
    evaluate,
    http_date,
    write_conditions,
)
from diststorage.meta import ObjectInfo

MODIFIED = datetime(2026, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)
AT_MODIFIED = "Wed, 04 Mar 2026 05:06:07 GMT"
BEFORE = "Wed, 04 Mar 2026 05:06:06 GMT"
ETAG = "0123456789abcdef0123456789abcdef"
INFO = ObjectInfo(
    object_id="o",
    key="k",
    size_bytes=1,
    md5_hex=ETAG,
    content_type="binary/octet-stream",
    policy="inline",
    stripe_size_bytes=1,
    segment_stripes=1,
    created_at=MODIFIED,
)


def test_entity_tags_are_unquoted_and_weakness_dropped() -> None:
    assert entity_tags(f'"{ETAG}", W/"other" , *,') == [ETAG, "other", "*"]


@pytest.mark.parametrize("value", [None, "yesterday", "", "Wed, 99 Foo 2026 00:00:00"])
def test_an_unparseable_date_is_none(value: str | None) -> None:
    assert http_date(value) is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, Verdict.PROCEED),
        ({"If-Match": f'"{ETAG}"'}, Verdict.PROCEED),
        ({"If-Match": f'"x", "{ETAG}"'}, Verdict.PROCEED),
        ({"If-Match": '"x"'}, PreconditionFailed),
        ({"If-Unmodified-Since": AT_MODIFIED}, Verdict.PROCEED),
        ({"If-Unmodified-Since": BEFORE}, PreconditionFailed),
        ({"If-Unmodified-Since": "garbage"}, Verdict.PROCEED),
        ({"If-Match": "*", "If-Unmodified-Since": BEFORE}, Verdict.PROCEED),
        ({"If-None-Match": f'W/"{ETAG}"'}, Verdict.NOT_MODIFIED),
        ({"If-None-Match": '"x"'}, Verdict.PROCEED),
        # Last-Modified has whole seconds: the object counts as modified at 05:06:07.
        ({"If-Modified-Since": AT_MODIFIED}, Verdict.NOT_MODIFIED),
        ({"If-Modified-Since": BEFORE}, Verdict.PROCEED),
        ({"If-None-Match": '"x"', "If-Modified-Since": AT_MODIFIED}, Verdict.PROCEED),
        ({"If-None-Match": ETAG, "If-Modified-Since": BEFORE}, Verdict.NOT_MODIFIED),
        ({"If-Match": '"x"', "If-None-Match": '"y"'}, PreconditionFailed),
    ],
)
def test_read_conditions_in_rfc_9110_order(
    headers: dict[str, str], expected: Verdict | type[Exception]
) -> None:
    if isinstance(expected, Verdict):
        assert evaluate(headers, INFO) is expected
    else:
        with pytest.raises(expected):
            evaluate(headers, INFO)


def test_copy_source_conditions_read_their_own_headers() -> None:
    assert evaluate({"If-Match": '"x"'}, INFO, COPY_SOURCE_CONDITIONS) is Verdict.PROCEED
    with pytest.raises(PreconditionFailed):
        evaluate({"x-amz-copy-source-if-match": '"x"'}, INFO, COPY_SOURCE_CONDITIONS)
    verdict = evaluate({"x-amz-copy-source-if-none-match": ETAG}, INFO, COPY_SOURCE_CONDITIONS)
    assert verdict is Verdict.NOT_MODIFIED


def test_write_conditions() -> None:
    none = write_conditions({"Other": "x"})
    assert not none.create_only
    assert none.if_match is None
    assert write_conditions({"If-None-Match": " * "}).create_only
    assert write_conditions({"If-Match": f'"{ETAG}"'}).if_match == ETAG
    assert write_conditions({"If-Match": "*"}).if_match == "*"
    for refused in ({"If-None-Match": f'"{ETAG}"'}, {"If-Match": '"a", "b"'}):
        with pytest.raises(NotImplementedFeature):
            write_conditions(refused)
