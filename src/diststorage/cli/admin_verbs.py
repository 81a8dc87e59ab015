"""Operator verbs: node accept / drain / activate / remove, rebalance, and the status view."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from diststorage.cli.client_verbs import CREDENTIALS, DEFAULT_URL, URL, console, run_client
from diststorage.client import Client

NodeId = Annotated[str, typer.Argument(help="node id, or a unique prefix of it")]
DRAIN_POLL_S = 2.0


def size_text(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return str(count)


def drain(
    node_id: NodeId,
    wait: Annotated[bool, typer.Option(help="wait until the node is safe to remove")] = False,
    url: URL = DEFAULT_URL,
    credentials: CREDENTIALS = None,
) -> None:
    """Move every shard off a node; it takes no new ones meanwhile."""
    node = run_client(
        url, credentials=credentials, work=lambda c: c.set_node_lifecycle(node_id, "drain")
    )
    console.print(f"node {node['id'][:8]} is draining: {node['chunks_in_use']} chunks to move")
    if "warning" in node:
        console.print(f"[yellow]warning:[/yellow] {node['warning']}")
    full_id = node["id"]
    while wait and not node["drained"]:
        time.sleep(DRAIN_POLL_S)
        node = run_client(url, credentials=credentials, work=lambda c: _node(c, full_id))
        console.print(f"  {node['chunks_in_use']} chunks left", highlight=False)
    if node["drained"]:
        console.print(f"node {node['id'][:8]} is drained: safe to remove")


def _node(client: Client, node_id: str) -> dict[str, Any]:
    for node in client.nodes():
        if node["id"] == node_id:
            return node
    raise typer.BadParameter(f"node {node_id} is gone")


def activate(node_id: NodeId, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Undo a drain: the node takes new shards again."""
    node = run_client(
        url, credentials=credentials, work=lambda c: c.set_node_lifecycle(node_id, "activate")
    )
    console.print(f"node {node['id'][:8]} is active")


def accept(node_id: NodeId, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Admit a pending node (gateways run with --node-admission manual): it takes shards."""
    node = run_client(
        url, credentials=credentials, work=lambda c: c.set_node_lifecycle(node_id, "accept")
    )
    console.print(f"node {node['id'][:8]} at {node['address']} is accepted ({node['lifecycle']})")


def remove(
    node_id: NodeId,
    force: Annotated[
        bool, typer.Option(help="remove even if it holds chunks in use (they are rebuilt)")
    ] = False,
    url: URL = DEFAULT_URL,
    credentials: CREDENTIALS = None,
) -> None:
    """Forget a drained (or, with --force, a dead) node."""
    run_client(url, credentials=credentials, work=lambda c: c.remove_node(node_id, force))
    console.print(f"node {node_id} removed")


def rebalance(url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Even out usage across nodes (after adding some), throttled like repair."""
    plan = run_client(url, credentials=credentials, work=lambda c: c.rebalance())
    console.print(
        f"{plan['chunks_to_move']} chunks ({size_text(plan['bytes_to_move'])}) will move off "
        f"{len(plan['from_nodes'])} nodes; follow with `diststorage status`"
    )


def status(url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Show cluster health, the node table and repair progress."""

    def work(client: Client) -> tuple[tuple[int, dict[str, Any]], list[Any], dict[str, Any]]:
        return client.health(), client.nodes(), client.repair()

    (code, health), nodes, repair = run_client(url, credentials=credentials, work=work)
    out = Console(width=max(Console().width, 110))
    colour = "green" if health["status"] == "ok" else "yellow" if code == 200 else "red"
    out.print(
        f"[{colour}]{health['status']}[/{colour}]: {health['live_nodes']} of "
        f"{health['total_nodes']} nodes live, {health['writable_nodes']} writable; "
        f"{health['redundancy']} writes need {health['needed_nodes']}"
    )
    pending = [n["id"] for n in nodes if n["lifecycle"] == "pending"]
    if pending:
        out.print(
            f"[yellow]{len(pending)} pending[/yellow] (no shards until accepted): "
            + ", ".join(f"`diststorage node accept {node_id}`" for node_id in pending),
            highlight=False,
        )
    out.print(_node_table(nodes))
    out.print(_repair_line(repair))


def _node_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table("node", "address", "state", "lifecycle", "used", "free", "chunks", "heard")
    now = datetime.now(UTC)
    colours = {"up": "green", "suspect": "yellow", "down": "red"}
    for node in nodes:
        state = node["state"]
        heard_s = (now - datetime.fromisoformat(node["last_heartbeat"])).total_seconds()
        lifecycle = node["lifecycle"] + (" (drained)" if node["drained"] else "")
        if node["lifecycle"] == "pending":
            # Heard, but no member until accepted: no shards, not counted live.
            lifecycle = "[yellow]pending[/]"
        table.add_row(
            node["id"][:8],
            node["address"],
            f"[{colours.get(state, 'red')}]{state}[/]",
            lifecycle,
            size_text(node["used"]),
            size_text(node["free"]),
            str(node["chunks"]),
            f"{heard_s:.0f} s ago",
        )
    return table


def _repair_line(repair: dict[str, Any]) -> str:
    if not repair["enabled"]:
        head = "repair: [yellow]paused[/yellow]"
    else:
        head = f"repair: {repair['state']}"
    eta = repair["eta_s"]
    parts = [
        head,
        f"{repair['stripes_below_target']} stripes below target",
        f"{size_text(repair['bytes_repaired'])} repaired",
        f"{size_text(int(repair['rate_bytes_per_s']))}/s",
    ]
    if eta is not None:
        parts.append(f"ETA {eta:.0f} s")
    spare = repair.get("fewest_spare_shards")
    if spare is not None:
        colour = "red" if spare <= 0 else "yellow"
        parts.append(f"[{colour}]the worst-off stripe can lose {spare} more shard(s)[/{colour}]")
    if repair["segments_unrecoverable"]:
        parts.append(f"[red]{repair['segments_unrecoverable']} segments unrecoverable[/red]")
    return "; ".join(parts)
