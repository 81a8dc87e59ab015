"""Rows with targets, plain-text tables, and a scan of the cluster's logs."""

from __future__ import annotations

import math
import os
import platform
import re
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

MIB = 1 << 20
GIB = 1 << 30


def size_label(size: int) -> str:
    if size >= GIB and size % (GIB // 4) == 0:
        return f"{size / GIB:g} GiB"
    if size % MIB == 0:
        return f"{size // MIB} MiB"
    return f"{size} B"


@dataclass
class Row:
    section: str
    measure: str
    value: float | None
    unit: str
    detail: str = ""
    target: float | None = None
    at_least: bool = True

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        if self.value is None or math.isnan(self.value):
            return False
        return self.value >= self.target if self.at_least else self.value <= self.target

    def figure(self) -> str:
        if self.value is None or math.isnan(self.value):
            return "n/a"
        return f"{self.value:,.1f} {self.unit}"

    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'≥' if self.at_least else '≤'} {self.target:,.0f} {self.unit}"

    def met_text(self) -> str:
        return {None: "", True: "met", False: "NOT MET"}[self.met]

    def to_json(self) -> dict[str, Any]:
        value = None if self.value is None or math.isnan(self.value) else round(self.value, 2)
        return {
            "section": self.section,
            "measure": self.measure,
            "value": value,
            "unit": self.unit,
            "detail": self.detail,
            "target": self.target_text() or None,
            "met": self.met,
        }


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def rows_table(rows: list[Row]) -> str:
    return format_table(
        ["Section", "Measure", "Figure", "Detail", "Target", "Met"],
        [[r.section, r.measure, r.figure(), r.detail, r.target_text(), r.met_text()] for r in rows],
    )


_LEVEL = re.compile(r"\b(WARNING|ERROR|CRITICAL)\b|Traceback")
_TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ")


def scan_logs(log_dir: Path, keep: int = 12) -> dict[str, Any]:
    """Counts warning/error lines per log file and keeps the most frequent distinct messages."""
    counts: dict[str, int] = {}
    messages: Counter[str] = Counter()
    if not log_dir.is_dir():
        return {"files": {}, "messages": []}
    for path in sorted(log_dir.glob("*.log")):
        hits = 0
        with path.open(errors="replace") as log:
            for raw in log:
                if _LEVEL.search(raw):
                    hits += 1
                    text = _TIMESTAMP.sub("", raw.strip())
                    text = re.sub(r"\b[0-9a-f]{8,}\b", "…", text)
                    messages[f"{path.stem}: {text[:240]}"] += 1
        counts[path.name] = hits
    return {
        "files": counts,
        "messages": [{"count": n, "line": m} for m, n in messages.most_common(keep)],
    }


def machine_json(
    *, memory: bool, load_at_start: Sequence[float] | None, **extra: str
) -> dict[str, Any]:
    """The machine a run measured on, for the JSON document: CPUs, (with ``memory``) its RAM,
    platform, Python, ``extra`` (e.g. the curl version), and the load average at the start (if
    given) and now."""
    machine: dict[str, Any] = {"cpus": os.cpu_count()}
    if memory:
        machine["memory_mib"] = round(psutil.virtual_memory().total / MIB)
    machine |= {"platform": platform.platform(), "python": platform.python_version(), **extra}
    if load_at_start is not None:
        machine["load_average_at_start"] = [round(v, 2) for v in load_at_start]
    machine["load_average_at_end"] = [round(v, 2) for v in os.getloadavg()]
    return machine


def keep_logs(log_dir: Path, copy_to: Path | None) -> dict[str, Any]:
    """``scan_logs`` of the cluster's log folder, after copying it to ``copy_to`` (if given)."""
    if copy_to is not None and log_dir.is_dir():
        shutil.copytree(log_dir, copy_to, dirs_exist_ok=True)
    return scan_logs(log_dir)


def has_room(workdir: Path, needed_bytes: int) -> bool:
    """Whether ``workdir`` has ``needed_bytes`` free; if not, says so on stderr."""
    free = shutil.disk_usage(workdir).free
    if free >= needed_bytes:
        return True
    print(
        f"{workdir} has {free / GIB:.1f} GiB free; this run needs about "
        f"{needed_bytes / GIB:.1f} GiB (use --tmp-dir)",
        file=sys.stderr,
    )
    return False
