"""S3 routing: any method, target and query is one operation we serve (with the right it
needs) or NotImplementedFeature / MethodNotAllowed; a sub-resource we do not serve is never
taken for the plain operation on its object or bucket."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from diststorage.core.errors import MethodNotAllowed, NotImplementedFeature
from diststorage.gateway.s3.addressing import Target
from diststorage.gateway.s3.routing import _SUBRESOURCES, ACCESS, Op, route

from .strategies import any_text

METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "get", "")
# The operations on an object or bucket itself, which no sub-resource may reach.
PLAIN = frozenset(
    {
        Op.LIST_BUCKETS, Op.CREATE_BUCKET, Op.HEAD_BUCKET, Op.DELETE_BUCKET, Op.LIST_OBJECTS,
        Op.LIST_OBJECTS_V2, Op.PUT_OBJECT, Op.COPY_OBJECT, Op.GET_OBJECT, Op.HEAD_OBJECT,
        Op.DELETE_OBJECT,
    }
)  # fmt: skip
SERVICE_OPS = frozenset({Op.LIST_BUCKETS})
BUCKET_OPS = frozenset(
    {
        Op.CREATE_BUCKET, Op.HEAD_BUCKET, Op.DELETE_BUCKET, Op.GET_BUCKET_LOCATION,
        Op.GET_BUCKET_VERSIONING, Op.GET_BUCKET_ACL, Op.GET_BUCKET_POLICY, Op.LIST_OBJECTS,
        Op.LIST_OBJECTS_V2, Op.LIST_UPLOADS, Op.DELETE_OBJECTS,
    }
)  # fmt: skip
# The methods each operation is asked with: HEAD on the service lists the buckets, as GET.
_GET = ("GET",)
METHODS_OF: dict[Op, tuple[str, ...]] = {
    Op.LIST_BUCKETS: ("GET", "HEAD"),
    **dict.fromkeys(
        (Op.GET_BUCKET_LOCATION, Op.GET_BUCKET_VERSIONING, Op.GET_BUCKET_ACL,
         Op.GET_BUCKET_POLICY, Op.LIST_OBJECTS, Op.LIST_OBJECTS_V2, Op.LIST_UPLOADS,
         Op.GET_OBJECT, Op.GET_OBJECT_ACL, Op.LIST_PARTS),
        _GET,
    ),
    **dict.fromkeys((Op.HEAD_BUCKET, Op.HEAD_OBJECT), ("HEAD",)),
    **dict.fromkeys(
        (Op.CREATE_BUCKET, Op.PUT_OBJECT, Op.COPY_OBJECT, Op.UPLOAD_PART, Op.UPLOAD_PART_COPY),
        ("PUT",),
    ),
    **dict.fromkeys((Op.DELETE_OBJECTS, Op.CREATE_UPLOAD, Op.COMPLETE_UPLOAD), ("POST",)),
    **dict.fromkeys((Op.DELETE_BUCKET, Op.DELETE_OBJECT, Op.ABORT_UPLOAD), ("DELETE",)),
}  # fmt: skip


def _queries() -> st.SearchStrategy[dict[str, str]]:
    names = st.one_of(
        st.sampled_from(sorted(_SUBRESOURCES)),
        st.sampled_from(["list-type", "partNumber", "prefix", "x-id", "Tagging", "ACL"]),
        any_text(8),
    )
    values = st.one_of(st.sampled_from(["", "null", "2", "1", "abc"]), any_text(8))
    return st.dictionaries(names, values, max_size=4)


def _targets() -> st.SearchStrategy[Target]:
    bucket = st.one_of(st.just(""), st.just("bucket"), any_text(8))
    key = st.one_of(st.just(""), st.just("key"), any_text(8))
    return st.builds(Target, bucket, key)


@given(st.one_of(st.sampled_from(METHODS), any_text(8)), _targets(), _queries(), st.booleans())
@example("GET", Target("b", "k"), {"tagging": ""}, False)
@example("GET", Target("b", "k"), {"versionId": "null"}, False)
@example("GET", Target("b", "k"), {"versionId": "3"}, False)
@example("PUT", Target("b", "k"), {"uploadId": "u"}, False)
@example("POST", Target("", ""), {}, False)
@example("HEAD", Target("", ""), {}, False)
def test_a_request_is_one_served_operation_or_refused(
    method: str, target: Target, query: dict[str, str], copy_source: bool
) -> None:
    try:
        op = route(method, target, query, copy_source)
    except (NotImplementedFeature, MethodNotAllowed):
        return
    assert op in ACCESS
    assert method in METHODS_OF[op]
    if not target.bucket:
        assert op in SERVICE_OPS
    elif not target.key:
        assert op in BUCKET_OPS
    else:
        assert op not in SERVICE_OPS | BUCKET_OPS
    named = _SUBRESOURCES.intersection(query) - (
        {"versionId"} if query.get("versionId") == "null" else set()
    )
    if op in PLAIN:
        assert not named
    assert (op in {Op.COPY_OBJECT, Op.UPLOAD_PART_COPY}) == (
        copy_source and op in {Op.COPY_OBJECT, Op.UPLOAD_PART_COPY, Op.PUT_OBJECT, Op.UPLOAD_PART}
    )


def test_the_tables_name_every_operation() -> None:
    assert set(METHODS_OF) == set(Op) == set(ACCESS)
    assert set(Op) >= PLAIN | SERVICE_OPS | BUCKET_OPS
