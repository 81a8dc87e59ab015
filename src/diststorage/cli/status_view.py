"""What `diststorage status` draws from ``/_/health`` and ``/_/repair``: the health line, the
durability histogram (one bar per spare count per policy) and the repair card (backlog, rate
against its limit, ETA, leader). Pure: dicts in, rich renderables out, so a test renders a
real gateway's answers and reads the text.

Small counts are never lost in rounding (Ceph once hid degraded objects below 0.5 %): every bar
shows its exact count, a non-zero count gets at least one cell of bar, and a share under 0.1 %
reads "<0.1 %", never "0.0 %".
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

BAR_CELLS = 40


def size_text(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return str(count)


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def share_text(count: int, total: int) -> str:
    """``count`` of ``total`` as a percentage that is 0 only when ``count`` is."""
    if total <= 0 or count == 0:
        return "0 %"
    share = 100 * count / total
    if share < 0.1:
        return "<0.1 %"
    if count < total and share > 99.9:
        return ">99.9 %"
    return f"{share:.1f} %"


def bar_cells(count: int, largest: int, width: int = BAR_CELLS) -> int:
    """Cells of bar for ``count`` against ``largest``: at least one for any non-zero count."""
    if count <= 0 or largest <= 0:
        return 0
    return max(1, round(width * count / largest))


def health_line(code: int, health: dict[str, Any]) -> Text:
    colour = "green" if health["status"] == "ok" else "yellow" if code == 200 else "red"
    return Text.from_markup(
        f"[{colour}]{health['status']}[/{colour}]: {health['live_nodes']} of "
        f"{health['total_nodes']} nodes live, {health['writable_nodes']} writable; "
        f"{health['redundancy']} writes need {health['needed_nodes']}"
    )


def _spare_colour(spare: int, full: int) -> str:
    if spare == full:
        return "green"
    return "red" if spare == 0 else "yellow"


def durability_table(durability: dict[str, Any]) -> Table:
    """One row per bar: each policy's stripes by how many more nodes they can lose, its
    unreadable stripes, and the inline objects."""
    table = Table("policy", "can lose", "stripes", "share", "", title="durability", box=None)
    for policy in durability["policies"]:
        by_spare = {int(spare): count for spare, count in policy["stripes_by_spare"].items()}
        unreadable = policy["unreadable_stripes"]
        total = sum(by_spare.values()) + unreadable
        largest = max([*by_spare.values(), unreadable])
        full = max(by_spare, default=0)
        name = policy["policy"]
        for spare, count in by_spare.items():
            colour = _spare_colour(spare, full)
            table.add_row(
                name,
                f"{spare} node{'s' if spare != 1 else ''}",
                str(count),
                share_text(count, total),
                Text("█" * bar_cells(count, largest), style=colour),
            )
            name = ""
        if unreadable:
            table.add_row(
                "",
                Text("unreadable", style="bold red"),
                str(unreadable),
                share_text(unreadable, total),
                Text("█" * bar_cells(unreadable, largest), style="bold red"),
            )
    table.add_row("inline", "(in the database)", str(durability["inline_objects"]), "", "")
    return table


def repair_card(repair: dict[str, Any]) -> Table:
    """Backlog, rate against its limit, ETA and who leads, one figure a line."""
    card = Table(box=None, show_header=False, title="repair")
    card.add_column(style="bold")
    card.add_column()
    state = repair["state"] if repair["enabled"] else "[yellow]paused[/yellow]"
    card.add_row("state", state)
    leader = repair.get("leader")
    if repair.get("this_gateway_leads"):
        card.add_row("leader", "this gateway")
    else:
        card.add_row(
            "leader",
            f"{leader[:8] if leader else 'none'} [yellow](figures below marked * are this "
            "gateway's own, not the cluster's)[/yellow]",
        )
    own = "" if repair.get("this_gateway_leads") else " *"
    card.add_row(
        "backlog",
        f"{repair['stripes_below_target']} stripes below target; "
        f"{repair['segments_queued']} segments ({repair['stripes_queued']} stripes) queued",
    )
    card.add_row(
        f"rate{own}",
        f"{size_text(int(repair['rate_bytes_per_s']))}/s of "
        f"{size_text(repair['bandwidth_limit_bytes_per_s'])}/s allowed; "
        f"{size_text(repair['bytes_repaired'])} repaired",
    )
    card.add_row(f"ETA{own}", _eta_text(repair))
    spare = repair.get("fewest_spare_shards")
    if spare is not None:
        colour = "red" if spare <= 0 else "yellow"
        card.add_row("worst", f"[{colour}]a stripe that can lose {spare} more node(s)[/{colour}]")
    if repair["segments_unrecoverable"]:
        card.add_row(
            "lost", f"[red]{repair['segments_unrecoverable']} segments unrecoverable[/red]"
        )
    if repair["unavailable_nodes"]:
        nodes = ", ".join(n[:8] for n in repair["unavailable_nodes"])
        card.add_row("nodes out", nodes)
    return card


def _eta_text(repair: dict[str, Any]) -> str:
    if repair["stripes_below_target"] == 0:
        return "[green]nothing to repair[/green]"
    eta = repair["eta_s"]
    if eta is None:
        return "[yellow]no progress measured yet[/yellow]"
    return f"done in about {duration_text(eta)}"


def status_view(code: int, health: dict[str, Any], repair: dict[str, Any]) -> RenderableType:
    """The health line, the durability histogram and the repair card."""
    return Group(
        health_line(code, health), durability_table(repair["durability"]), repair_card(repair)
    )
