"""What `diststorage status` draws from /_/health and /_/repair answers: small counts stay
visible, and on a gateway that does not lead, whose repair figures are shown is said."""

from __future__ import annotations

import re
from typing import Any

import pytest
from rich.console import Console

from diststorage.cli.status_view import bar_cells, share_text, status_view

HEALTH = {
    "status": "degraded",
    "live_nodes": 5,
    "total_nodes": 6,
    "writable_nodes": 5,
    "needed_nodes": 4,
    "redundancy": "ec:4+2",
}
LEADER = "ab" * 16


def repair_answer(**changes: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "enabled": True,
        "leader": LEADER,
        "this_gateway": LEADER,
        "this_gateway_leads": True,
        "counters_scope": "cluster",
        "state": "busy",
        "stripes_below_target": 5,
        "fewest_spare_shards": 1,
        "stripes_queued": 5,
        "segments_queued": 2,
        "segments_unrecoverable": 0,
        "bytes_repaired": 3 << 20,
        "rate_bytes_per_s": float(2 << 20),
        "bandwidth_limit_bytes_per_s": 64 << 20,
        "eta_s": 840.0,
        "unavailable_nodes": ["cd" * 16],
        "durability": {
            "policies": [
                {
                    "policy": "ec:4+2",
                    "shards": 6,
                    "needed": 4,
                    "stripes_by_spare": {"2": 1_000_000, "1": 5, "0": 0},
                    "unreadable_stripes": 1,
                }
            ],
            "inline_objects": 17,
            "totals_refreshed_at": "2026-12-03T09:00:00+00:00",
        },
    }
    return answer | changes


def text_of(repair: dict[str, Any]) -> str:
    console = Console(record=True, width=120, color_system=None)
    console.print(status_view(200, HEALTH, repair))
    return console.export_text()


def row(text: str, pattern: str) -> str:
    found = re.search(pattern, text, re.M)
    assert found is not None, text
    return found.group(0)


@pytest.mark.parametrize(
    ("count", "total", "shown"),
    [
        (0, 10, "0 %"),
        (1, 1_000_001, "<0.1 %"),
        (1_000_000, 1_000_001, ">99.9 %"),
        (5, 5, "100.0 %"),
    ],
)
def test_a_share_is_zero_only_when_its_count_is(count: int, total: int, shown: str) -> None:
    assert share_text(count, total) == shown


def test_a_non_zero_count_gets_a_cell_of_bar() -> None:
    assert bar_cells(1, 1_000_000) == 1
    assert bar_cells(0, 1_000_000) == 0
    assert bar_cells(1_000_000, 1_000_000) == 40


def test_small_counts_and_the_unreadable_stripes_are_shown_exactly() -> None:
    text = text_of(repair_answer())
    assert "█" in row(text, r"^ +1 node +5 +<0\.1 % +.*$")
    assert "█" not in row(text, r"^ +0 nodes +0 +0 % *$")
    assert "█" in row(text, r"^ +unreadable +1 +<0\.1 % +.*$")
    row(text, r"^ *inline +\(in the database\) +17 ")
    row(text, r"^ *ETA +done in about 14 min")
    row(text, r"^ *rate +2\.0 MiB/s of 64\.0 MiB/s allowed; 3\.0 MiB repaired")


def test_a_follower_shows_the_leaders_published_figures() -> None:
    published = {
        "published_at": "2026-12-03T09:00:07.5+00:00",
        "state": "throttled",
        "rate_bytes_per_s": float(8 << 20),
        "bytes_repaired": 9 << 20,
        "segments_unrecoverable": 0,
        "eta_s": 60.0,
    }
    follower = repair_answer(
        this_gateway="ef" * 16,
        this_gateway_leads=False,
        counters_scope="this_gateway",
        state="idle",
        rate_bytes_per_s=0.0,
        bytes_repaired=0,
        eta_s=None,
        leader_figures=published,
    )
    text = text_of(follower)
    row(text, r"^ *leader +abababab \(its figures as of 09:00:07 UTC\)")
    row(text, r"^ *state +throttled")
    row(text, r"^ *rate +8\.0 MiB/s of 64\.0 MiB/s allowed; 9\.0 MiB repaired")
    row(text, r"^ *ETA +done in about 60 s")
    without = text_of(follower | {"leader_figures": None})
    row(without, r"^ *leader +abababab \(the figures are this gateway's own\)")
    row(without, r"^ *ETA +no progress measured yet")


def test_an_answer_without_a_histogram_still_draws_the_repair_card() -> None:
    older = repair_answer()
    del older["durability"]
    text = text_of(older)
    assert "durability" not in text
    row(text, r"^ *backlog +5 stripes below target")
