"""The dashboard's pure parts: the durability histogram's bars, quantiles of the latency
buckets, shares that never round a risk away, the session cookie and its CSRF token, where a
login may send the browser, and the bounded event log."""

from __future__ import annotations

import secrets

import pytest

from diststorage.core.credentials import Credentials
from diststorage.core.policy import parse_policy
from diststorage.core.secrets import MasterKey
from diststorage.gateway.auth.keys import KeyCache
from diststorage.gateway.dashboard.charts import BAR_MIN_PX, durability_bars, heat_class
from diststorage.gateway.dashboard.security import safe_next
from diststorage.gateway.dashboard.session import Sessions
from diststorage.gateway.dashboard.templating import percent
from diststorage.gateway.dashboard.throughput import Reading, quantile, sample_between
from diststorage.gateway.events import EventKind, EventLog
from diststorage.meta import MetadataStore

EC42 = parse_policy("ec:4+2")
ROOT = Credentials("ROOTKEYID0000000", "root-secret-that-is-long")


def _repair(durability: dict[str, object] | None) -> dict[str, object]:
    body: dict[str, object] = {"stripes_below_target": 5, "fewest_spare_shards": 1}
    if durability is not None:
        body["durability"] = durability
    return body


def test_the_bars_go_from_full_spare_down_and_a_tiny_count_still_shows() -> None:
    durability = {
        "policies": [
            {
                "policy": "ec:4+2",
                "shards": 6,
                "needed": 4,
                "stripes_by_spare": {"0": 0, "2": 1_000_000, "1": 1},
                "unreadable_stripes": 0,
            }
        ],
        "inline_objects": 17,
        "totals_refreshed_at": "2026-12-03T09:00:00+00:00",
    }
    drawn = durability_bars(_repair(durability), EC42)
    bars = drawn["policies"][0]["bars"]
    assert [b["spare"] for b in bars] == ["2", "1", "0", "unreadable"]
    assert [b["cls"] for b in bars] == ["spare-full", "spare-one", "spare-none", "unreadable"]
    assert bars[1]["width"] == BAR_MIN_PX  # one stripe in a million is still seen
    assert bars[2]["width"] == 0
    assert drawn["inline"]["count"] == 17
    assert drawn["exact"] is True


def test_without_a_durability_member_the_backlog_is_drawn_at_its_worst_spare() -> None:
    drawn = durability_bars(_repair(None), EC42)
    assert drawn["exact"] is False
    assert [(b["spare"], b["count"]) for b in drawn["policies"][0]["bars"]] == [("1", 5)]


def test_heat_classes_cover_empty_to_full() -> None:
    assert heat_class(0, 100) == "u0"
    assert heat_class(55, 100) == "u5"
    assert heat_class(100, 100) == "u9"
    assert heat_class(5, 0) == "u9"


@pytest.mark.parametrize(
    ("part", "whole", "shown"),
    [(0, 10, "0.0 %"), (1, 1_000_000, "<0.1 %"), (999_999, 1_000_000, ">99.9 %"), (1, 0, "–")],
)
def test_a_share_is_never_rounded_to_nothing(part: int, whole: int, shown: str) -> None:
    assert percent(part, whole) == shown


def test_quantiles_interpolate_within_their_bucket() -> None:
    buckets = [(0.001, 0.0), (0.01, 50.0), (0.1, 100.0), (float("inf"), 100.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.75, buckets) == pytest.approx(0.055)
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_a_sample_is_the_difference_of_two_readings() -> None:
    before = Reading(0.0, {"GET": 10.0}, 0.0, 0.0, ((0.01, 10.0), (float("inf"), 10.0)))
    after = Reading(2.0, {"GET": 30.0, "PUT": 4.0}, 8192.0, 40960.0,
                    ((0.01, 28.0), (float("inf"), 30.0)))  # fmt: skip
    sample = sample_between(before, after)
    assert sample.get_per_s == 10.0
    assert sample.put_per_s == 2.0
    assert sample.in_bytes_per_s == 4096.0
    assert sample.out_bytes_per_s == 20480.0
    assert sample.p50_s == pytest.approx(0.01 * 10 / 18)


async def test_a_session_cookie_opens_until_it_expires_and_is_bound_to_its_mac(
    sqlite_store: MetadataStore,
) -> None:
    master = MasterKey(secrets.token_bytes(32))
    keys = KeyCache(sqlite_store.accounts, master, ROOT, ttl_s=5.0)
    sessions = Sessions(master, keys, ttl_s=60)
    cookie = await sessions.login(ROOT.access_key_id, ROOT.secret_access_key)
    assert cookie is not None
    session = await sessions.check(cookie)
    assert session is not None and session.principal.is_admin
    assert await sessions.login(ROOT.access_key_id, "wrong-secret") is None
    assert await sessions.check(cookie[:-2] + "xx") is None
    assert await sessions.check(cookie.replace(".", ".9", 1)) is None
    now = float(cookie.split(".")[-2])
    assert await sessions.check(cookie, now_s=now) is None
    # Another master key (another cluster) does not take this cluster's cookies.
    other = Sessions(MasterKey(secrets.token_bytes(32)), keys, ttl_s=60)
    assert await other.check(cookie) is None
    token = sessions.csrf_token(session)
    assert sessions.csrf_ok(session, token)
    assert not sessions.csrf_ok(session, token[:-1])
    assert not sessions.csrf_ok(session, None)


@pytest.mark.parametrize(
    ("target", "goes_to"),
    [
        ("/_/ui/nodes?x=1", "/_/ui/nodes?x=1"),
        ("https://evil.example/", "/_/ui"),
        ("/_/ui//evil.example", "/_/ui"),
        ("/_/ui\\\\evil", "/_/ui"),
        (None, "/_/ui"),
    ],
)
def test_a_login_sends_the_browser_back_only_within_the_dashboard(
    target: str | None, goes_to: str
) -> None:
    assert safe_next(target) == goes_to


def test_the_event_log_keeps_the_newest_only() -> None:
    events = EventLog(max_events=3)
    for index in range(5):
        events.record(EventKind.NODE_UP, f"node {index}")
    assert [e.text for e in events.latest(10)] == ["node 4", "node 3", "node 2"]
    assert events.recorded == 5
