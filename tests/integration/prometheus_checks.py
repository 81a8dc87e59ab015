"""What the observability tests share: scraping a gateway, reading an exposition, finding the
metric names a PromQL expression reads, and running promtool."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import IO

import pytest
from prometheus_client.parser import text_string_to_metric_families

from diststorage.client import Client

ROOT = Path(__file__).resolve().parents[2]
PROMTOOL_TIMEOUT_S = 120.0

Series = dict[str, list[tuple[dict[str, str], float]]]


def scrape(http: Client) -> bytes:
    response = http.request("GET", "/_/metrics")
    assert response.status == 200, response.body[:200]
    return response.body


def series(exposition: bytes) -> Series:
    """Each sample name (``…_total``, ``…_bucket`` included) with its labels and values."""
    found: Series = {}
    for family in text_string_to_metric_families(exposition.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def sample_names(exposition: bytes) -> set[str]:
    return set(series(exposition))


# What a metric name is not: PromQL's keywords, and names inside label matchers, ranges,
# grouping clauses or strings, which are cut out before names are looked for.
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right"}
    | {"offset", "bool", "inf", "nan"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_NAME = re.compile(r"(?<![A-Za-z0-9_.:$])[A-Za-z_:][A-Za-z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (a name followed by ``(`` is a function)."""
    text = _STRING.sub('""', expr)
    for pattern in (_MATCHERS, _RANGE, _GROUPING):
        text = pattern.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue
        if match.group().lower() not in _KEYWORDS:
            names.add(match.group())
    return names


def promtool(*args: str, stdin: IO[bytes] | None = None) -> subprocess.CompletedProcess[str]:
    """``promtool ARGS`` from the repository's root. Without promtool the test is skipped,
    saying why, except in CI (``CI=true``), where the checks must run: it fails instead."""
    path = shutil.which("promtool")
    if path is None:
        message = "promtool is not installed (Debian: apt-get install prometheus)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; in CI these checks must run (.ci/run installs it)")
        pytest.skip(message)
    return subprocess.run(
        [path, *args],
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=PROMTOOL_TIMEOUT_S,
        cwd=ROOT,
        check=False,
    )
