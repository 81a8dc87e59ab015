"""Operator verbs: node drain / activate / remove, rebalance, and the status view."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from diststorage.cli.client_verbs import (
    CREDENTIALS,
    DEFAULT_URL,
    URL,
    console,
    resolve_credentials,
    run_client,
)
from diststorage.cli.status_view import (
    durability_table,
    health_line,
    repair_card,
    size_text,
    status_view,
)
from diststorage.client import Client, ClientError
from diststorage.core.errors import InvalidRequest

NodeId = Annotated[str, typer.Argument(help="node id, or a unique prefix of it")]
DRAIN_POLL_S = 2.0
WATCH_INTERVAL_S = 2.0


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


def status(
    watch: Annotated[
        bool, typer.Option(help="redraw the health, durability and repair view until Ctrl-C")
    ] = False,
    interval: Annotated[
        float, typer.Option(min=0.2, help="seconds between two redraws with --watch")
    ] = WATCH_INTERVAL_S,
    url: URL = DEFAULT_URL,
    credentials: CREDENTIALS = None,
) -> None:
    """Show cluster health, the node table, the durability histogram and repair progress."""
    out = Console(width=max(Console().width, 110))
    if watch:
        _watch(out, url, credentials, interval)
        return

    def work(client: Client) -> tuple[tuple[int, dict[str, Any]], list[Any], dict[str, Any]]:
        return client.health(), client.nodes(), client.repair()

    (code, health), nodes, repair = run_client(url, credentials=credentials, work=work)
    out.print(health_line(code, health))
    out.print(_node_table(nodes))
    out.print(durability_table(repair["durability"]))
    out.print(repair_card(repair))


def _watch(out: Console, url: str, credentials: Path | None, interval_s: float) -> None:
    """Redraws from /_/health and /_/repair every ``interval_s`` until Ctrl-C. Not the node
    table: /_/nodes counts every chunk per node, too dear to ask for every few seconds. A
    gateway that does not answer is said so in place, and asked again next time."""
    try:
        signing = resolve_credentials(credentials)
    except (OSError, InvalidRequest) as error:
        console.print(f"[red]error:[/red] credentials: {error}")
        raise typer.Exit(2) from error
    client = Client(url, credentials=signing)
    try:
        with Live(_watched(client, url), console=out, auto_refresh=False) as live:
            while True:
                time.sleep(interval_s)
                live.update(_watched(client, url), refresh=True)
    except KeyboardInterrupt:
        pass


def _watched(client: Client, url: str) -> RenderableType:
    stamp = datetime.now(UTC).strftime("%H:%M:%S")
    try:
        code, health = client.health()
        view = status_view(code, health, client.repair())
    except (ClientError, ValueError) as error:
        view = Text(f"{url} did not answer: {error}", style="red")
    return Group(Text(f"{url} at {stamp} UTC (Ctrl-C to stop)", style="dim"), view)


def _node_table(nodes: list[dict[str, Any]]) -> Table:
    table = Table("node", "address", "state", "lifecycle", "used", "free", "chunks", "heard")
    now = datetime.now(UTC)
    colours = {"up": "green", "suspect": "yellow", "down": "red"}
    for node in nodes:
        state = node["state"]
        heard_s = (now - datetime.fromisoformat(node["last_heartbeat"])).total_seconds()
        lifecycle = node["lifecycle"] + (" (drained)" if node["drained"] else "")
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
