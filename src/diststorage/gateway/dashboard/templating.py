"""Jinja2 for the dashboard: one environment, autoescaped, rendered asynchronously.

Pages extend ``base.html`` and fill ``{% block content %}``. Each live panel is one partial
(``_<panel>.html``) that its page includes and the live stream renders again (``live``), so a
number has one rendering. Templates may call ``static(name)`` (a versioned asset URL),
``ui(path)`` (a dashboard URL) and the filters below.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import jinja2

from diststorage.gateway.dashboard.charts import throughput_figures
from diststorage.gateway.dashboard.static import StaticAssets

TEMPLATE_DIR = Path(__file__).parent / "templates"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(value: float | None) -> str:
    """1536 → ``1.5 KiB``; None → ``–``."""
    if value is None:
        return "–"
    size = float(value)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_seconds(value: float | None) -> str:
    """95 → ``1 min 35 s``; None → ``–``."""
    if value is None:
        return "–"
    seconds = round(value)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def percent(part: float, whole: float) -> str:
    """A share that is never rounded to 0 or 100 when it is not exactly that: a 0.01 % at
    risk must show (the Ceph lesson, ceph/ceph#44091)."""
    if whole <= 0:
        return "–"
    share = 100.0 * part / whole
    if 0 < share < 0.1:
        return "<0.1 %"
    if 99.9 < share < 100:
        return ">99.9 %"
    return f"{share:.1f} %"


def ago(when: str | datetime.datetime | None, now: datetime.datetime | None = None) -> str:
    """How long before now an ISO time (or datetime) was: ``4 s ago``."""
    if when is None:
        return "never"
    moment = datetime.datetime.fromisoformat(when) if isinstance(when, str) else when
    now = now or datetime.datetime.now(datetime.UTC)
    return f"{human_seconds(max((now - moment).total_seconds(), 0.0))} ago"


class Templates:
    def __init__(self, assets: StaticAssets, ui_path: str, directory: Path = TEMPLATE_DIR):
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(directory),
            enable_async=True,
            autoescape=True,
            # A misspelt name fails the render instead of showing an empty cell.
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["static"] = assets.url
        self.env.globals["ui"] = lambda path="": ui_path + path
        self.env.filters["bytes"] = human_bytes
        self.env.filters["seconds"] = human_seconds
        self.env.filters["ago"] = ago
        self.env.globals["percent"] = percent
        self.env.globals["throughput_figures"] = throughput_figures

    async def render(self, name: str, context: dict[str, Any]) -> str:
        return await self.env.get_template(name).render_async(context)
