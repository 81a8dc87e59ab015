"""SigV4 (and SigV2 presign) authentication: ``parse_authentication`` on any Authorization
header and query gives a claim, None, or an AuthError / InvalidRequest, and ``verify`` on a
claim gives a verdict the same way; our canonical request for anything botocore signs
(generated keys, queries, headers) is botocore's, so its signature verifies, and a change to a
signed part does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st
from sigv4_oracles import ENDPOINT, REGION, SECRET, accepted, botocore_signed, signed_at

from diststorage.core.errors import AuthError, InvalidRequest, SignatureDoesNotMatch
from diststorage.s3auth import Claim, SignedRequest, parse_authentication, verify
from diststorage.s3auth.canonical import AMZ_DATE_FORMAT

from .strategies import pieced, wire_text

EARLIEST = datetime(1990, 1, 1)
LATEST = datetime(9999, 12, 31, 23, 59, 59)
SIGNATURE = "0123456789abcdef" * 4
WIRE = st.one_of(st.text(max_size=24), wire_text(24))


@st.composite
def times(draw: st.DrawFn) -> tuple[datetime, datetime]:
    """(the time a request says it was signed, the server's time), mostly close together."""
    signed = draw(st.datetimes(EARLIEST, LATEST, timezones=st.just(UTC))).replace(microsecond=0)
    offset = draw(st.one_of(st.integers(-1000, 1000), st.integers(-(10**9), 10**9)))
    try:
        return signed, signed + timedelta(seconds=offset)
    except OverflowError:
        return signed, signed


def _credentials(signed: datetime) -> st.SearchStrategy[str]:
    day = signed.strftime("%Y%m%d")
    return st.one_of(
        st.just(f"KEY/{day}/{REGION}/s3/aws4_request"),
        st.just(f"KEY/{day}/eu-west-9/s3/aws4_request"),
        st.sampled_from(["KEY/2026/us-east-1/s3/aws4_request", "/", "K//r/s3/aws4_request"]),
        WIRE,
    )


def _authorizations(signed: datetime) -> st.SearchStrategy[str]:
    fields = st.one_of(
        _credentials(signed).map(lambda value: "Credential=" + value),
        st.sampled_from(["host", "host;x-amz-date", "date;host", "Host", "host;;a", ""]).map(
            lambda value: "SignedHeaders=" + value
        ),
        st.sampled_from([SIGNATURE, SIGNATURE.upper(), "abc", ""]).map(
            lambda value: "Signature=" + value
        ),
        WIRE,
    )
    scheme = st.sampled_from(["AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", "AWS", "Bearer", ""])
    separator = st.sampled_from([",", ", ", ",,", " "])
    return st.tuples(scheme, st.lists(fields, max_size=5), separator).map(
        lambda parts: f"{parts[0]} {parts[2].join(parts[1])}"
    )


def _query(signed: datetime) -> st.SearchStrategy[str]:
    amz_date = signed.strftime(AMZ_DATE_FORMAT)
    pairs = st.one_of(
        st.sampled_from(["AWS4-HMAC-SHA256", "AWS4-ECDSA-P256-SHA256", "AWS4"]).map(
            lambda value: "X-Amz-Algorithm=" + value
        ),
        _credentials(signed).map(
            lambda value: "X-Amz-Credential=" + quote(value.encode("utf-8", "surrogateescape"))
        ),
        st.sampled_from([amz_date, "99991231T235959Z", "2026", ""]).map(
            lambda value: "X-Amz-Date=" + value
        ),
        st.sampled_from(["604800", "604801", "0", "1", "9" * 13, ""]).map(
            lambda value: "X-Amz-Expires=" + value
        ),
        st.sampled_from(["host", "host%3Bx-amz-date", ""]).map(
            lambda value: "X-Amz-SignedHeaders=" + value
        ),
        st.sampled_from([SIGNATURE, "x"]).map(lambda value: "X-Amz-Signature=" + value),
        st.sampled_from(["AWSAccessKeyId=KEY", "Signature=abc%2B", "Expires=1700000000"]),
        st.sampled_from(["Expires=99999999999", "Expires=" + "9" * 13, "uploads", "acl="]),
        pieced(("=", "&", "%", "+", "%2B", "x-amz-content-sha256="), free=WIRE),
    )
    return st.lists(pairs, max_size=8).map("&".join)


def _headers(signed: datetime) -> st.SearchStrategy[list[tuple[str, str]]]:
    amz_date = signed.strftime(AMZ_DATE_FORMAT)
    http_date = signed.strftime("%a, %d %b %Y %H:%M:%S GMT")
    header = st.one_of(
        _authorizations(signed).map(lambda value: ("Authorization", value)),
        st.sampled_from([amz_date, "99991231T235959Z", "2026-01-01"]).map(
            lambda value: ("x-amz-date", value)
        ),
        st.sampled_from(
            [http_date, "Fri, 31 Dec 9999 23:59:59 -2359", "Mon, 01 Jan 100 00:00:00 +2359"]
        ).map(lambda value: ("Date", value)),
        st.sampled_from(
            ["UNSIGNED-PAYLOAD", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "e" * 64, ""]
        ).map(lambda value: ("x-amz-content-sha256", value)),
        st.tuples(st.sampled_from(["Host", "x-amz-meta-a", "Content-Type"]), WIRE),
        st.tuples(WIRE, WIRE),
    )
    return st.lists(header, max_size=6).map(lambda found: [("Host", "127.0.0.1:9000"), *found])


@st.composite
def requests(draw: st.DrawFn) -> tuple[SignedRequest, datetime]:
    signed, now = draw(times())
    method = draw(st.sampled_from(["GET", "PUT", "HEAD", "POST", "DELETE"]))
    path = draw(pieced(("/", "%", "%2F", "%ff", "~", "!", "(", " "), free=WIRE))
    request = SignedRequest(method, "/" + path, draw(_query(signed)), draw(_headers(signed)))
    return request, now


@st.composite
def nearly_valid_requests(draw: st.DrawFn) -> tuple[SignedRequest, datetime]:
    """Every part authentication needs, each one right or a little wrong: the requests that
    get past the parser's first checks, to its canonicalisation and to ``verify``."""
    signed, now = draw(times())
    amz_date = signed.strftime(AMZ_DATE_FORMAT)
    credential = draw(_credentials(signed).filter(lambda text: "&" not in text))
    signed_headers = draw(
        st.sampled_from(["host;x-amz-date", "host", "host;x-amz-date;x-amz-meta-a"])
    )
    signature = draw(st.sampled_from([SIGNATURE, SIGNATURE.upper()]))
    headers = [
        ("Host", "127.0.0.1:9000"),
        *draw(
            st.lists(
                st.tuples(st.sampled_from(["x-amz-meta-a", "X-Amz-Meta-A", "content-type"]), WIRE),
                max_size=2,
            )
        ),
    ]
    path = "/" + draw(pieced(("/", "%", "%2F", "%ff", "~", "!", " "), free=WIRE))
    if draw(st.booleans()):
        headers += [
            ("x-amz-date", draw(st.sampled_from([amz_date, "99991231T235959Z", amz_date[:-1]]))),
            ("x-amz-content-sha256", draw(st.sampled_from(["UNSIGNED-PAYLOAD", "e" * 64]))),
            (
                "Authorization",
                f"AWS4-HMAC-SHA256 Credential={credential}, "
                f"SignedHeaders={signed_headers}, Signature={signature}",
            ),
        ]
        query = draw(st.sampled_from(["", "acl", "prefix=a%20b+c&list-type=2", "uploads&a=%2"]))
        return SignedRequest("PUT", path, query, headers), now
    query = "&".join(
        [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=" + quote(credential.encode("utf-8", "surrogateescape")),
            "X-Amz-Date=" + draw(st.sampled_from([amz_date, "99991231T235959Z"])),
            "X-Amz-Expires=" + draw(st.sampled_from(["1", "3600", "604800", "604801"])),
            "X-Amz-SignedHeaders=" + quote(signed_headers),
            "X-Amz-Signature=" + signature,
            *draw(
                st.lists(st.sampled_from(["x-amz-content-sha256=UNSIGNED-PAYLOAD", "acl", "a=%2"]))
            ),
        ]
    )
    return SignedRequest("GET", path, query, headers), now


def _judge(request: SignedRequest, now: datetime) -> None:
    """parse_authentication, then verify: results or the documented errors only."""
    try:
        claim = parse_authentication(request, now)
    except (AuthError, InvalidRequest) as error:
        event(f"parse: {type(error).__name__}")
        return
    if claim is None:
        return
    assert isinstance(claim, Claim)
    assert claim.canonical
    try:
        verify(claim, SECRET, REGION, now)
    except AuthError as error:
        event(f"verify: {type(error).__name__}")


@given(st.one_of(requests(), nearly_valid_requests()))
def test_any_authentication_is_a_claim_none_or_an_auth_error(
    request_and_now: tuple[SignedRequest, datetime],
) -> None:
    _judge(*request_and_now)


AUTHORIZATION = (
    "AWS4-HMAC-SHA256 Credential=KEY/99991231/us-east-1/s3/aws4_request,"
    f" SignedHeaders=date;host, Signature={SIGNATURE}"
)
PRESIGNED_AT_THE_END_OF_TIME = (
    "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=KEY%2F99991231%2Fus-east-1%2Fs3%2F"
    "aws4_request&X-Amz-Date=99991231T235959Z&X-Amz-Expires=604800&X-Amz-SignedHeaders=host"
    f"&X-Amz-Signature={SIGNATURE}"
)
NOW = datetime(2026, 12, 2, tzinfo=UTC)


def test_a_date_header_past_the_year_9999_in_utc_is_access_denied() -> None:
    # 9999-12-31 23:59:59 at -23:59 is in the year 10000 in UTC: OverflowError, once.
    headers = [
        ("Host", "h"),
        ("Date", "Fri, 31 Dec 9999 23:59:59 -2359"),
        ("Authorization", AUTHORIZATION),
        ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
    ]
    with pytest.raises(AuthError, match="not an HTTP date"):
        parse_authentication(SignedRequest("GET", "/b/k", "", headers), NOW)


def test_a_presigned_url_expiring_past_the_year_9999_is_malformed() -> None:
    request = SignedRequest("GET", "/b/k", PRESIGNED_AT_THE_END_OF_TIME, [("Host", "h")])
    with pytest.raises(AuthError, match="X-Amz-Expires"):
        parse_authentication(request, NOW)


# -- botocore, the oracle --------------------------------------------------------------------

KEYS = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30)
QUERY_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
HEADER_VALUES = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E) | st.just("\t"))


def _url(key: str, query: list[tuple[str, str]]) -> str:
    encoded = "&".join(
        quote(name, safe="-_.~") + ("=" + quote(value, safe="-_.~") if value else "")
        for name, value in query
    )
    return f"{ENDPOINT}/bucket/{quote(key, safe='/~')}" + (f"?{encoded}" if encoded else "")


@given(
    st.sampled_from(["GET", "PUT", "HEAD", "DELETE", "POST"]),
    KEYS,
    st.lists(st.tuples(QUERY_TEXT.filter(bool), QUERY_TEXT), max_size=4),
    st.dictionaries(st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True), HEADER_VALUES, max_size=3),
)
@example("GET", "a/../b//c", [("prefix", "a b+c"), ("uploads", "")], {"x": "  two  spaces "})
@example("PUT", "~!*'()", [("a", "é"), ("a", "")], {"t": "tab\there"})
def test_what_botocore_signs_verifies_and_a_changed_header_does_not(
    method: str, key: str, query: list[tuple[str, str]], metadata: dict[str, str]
) -> None:
    headers = [(f"x-amz-meta-{name}", value) for name, value in metadata.items()]
    request = botocore_signed(method, _url(key, query), headers)
    assert accepted(request).access_key_id
    changed = SignedRequest(
        request.method,
        request.raw_path,
        request.raw_query,
        [
            (name, value + "!" if name.lower() == "x-amz-date" else value)
            for name, value in request.headers
        ],
    )
    with pytest.raises((SignatureDoesNotMatch, AuthError)):
        accepted(changed, now=signed_at(request))
