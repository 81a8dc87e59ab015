"""Client verbs: put, get, ls, rm, stat, status."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from diststorage.client import Client, ClientError

T = TypeVar("T")
URL = Annotated[str, typer.Option("--url", envvar="DISTSTORAGE_URL", help="gateway URL")]
DEFAULT_URL = "http://127.0.0.1:7001"
PROGRESS_AFTER_S = 1.0
console = Console(stderr=True)


def _run(url: str, work: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        async with Client(url) as client:
            return await work(client)

    try:
        return asyncio.run(main())
    except ClientError as error:
        console.print(f"[red]error:[/red] {error.code}: {error.message}")
        raise typer.Exit(1) from error


@contextmanager
def _progress(total: int | None, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar that appears only once a transfer has taken longer than a second."""
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    task = bar.add_task(label, total=total)
    started = time.monotonic()
    shown = False

    def advance(count: int) -> None:
        nonlocal shown
        bar.advance(task, count)
        if not shown and time.monotonic() - started > PROGRESS_AFTER_S and console.is_terminal:
            bar.start()
            shown = True

    try:
        yield advance
    finally:
        if shown:
            bar.stop()


def put(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    key: Annotated[str | None, typer.Argument(help="object key; default the file name")] = None,
    redundancy: Annotated[str | None, typer.Option(help="ec:K+M or replicate:N")] = None,
    create: Annotated[bool, typer.Option(help="fail if the key exists")] = False,
    url: URL = DEFAULT_URL,
) -> None:
    """Upload FILE as KEY."""
    target = key or file.name
    with _progress(file.stat().st_size, f"put {target}") as advance:
        result = _run(url, lambda c: c.put_file(file, target, not create, redundancy, advance))
    typer.echo(
        f"{result['key']}  {result['size']} bytes  md5 {result['md5']}  {result['redundancy']}"
    )


def get(
    key: str,
    file: Annotated[str | None, typer.Argument(help="output path, or - for stdout")] = None,
    url: URL = DEFAULT_URL,
) -> None:
    """Download KEY into FILE (default: the key's last path part)."""
    target = file or key.rsplit("/", 1)[-1]

    async def work(client: Client) -> None:
        size = int((await client.stat(key)).get("content-length", 0))
        if target == "-":
            await client.get_to(key, sys.stdout.buffer)
            return
        partial = Path(target + ".part")
        try:
            with _progress(size, f"get {key}") as advance, partial.open("wb") as sink:
                await client.get_to(key, sink, advance)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)

    _run(url, work)


def ls(prefix: Annotated[str, typer.Argument()] = "", url: URL = DEFAULT_URL) -> None:
    """List keys, optionally under PREFIX."""

    async def work(client: Client) -> None:
        async for item in client.list_all(prefix):
            typer.echo(f"{item['size']:>14}  {item['last_modified'][:19]}  {item['key']}")

    _run(url, work)


def rm(key: str, url: URL = DEFAULT_URL) -> None:
    """Delete KEY."""
    _run(url, lambda c: c.delete(key))


def stat(key: str, url: URL = DEFAULT_URL) -> None:
    """Show KEY's size, ETag, type, redundancy and time."""
    headers = _run(url, lambda c: c.stat(key))
    for name in ("Content-Length", "ETag", "Content-Type", "X-Redundancy", "Last-Modified"):
        typer.echo(f"{name:>15}: {headers.get(name.lower(), '')}")


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{count} B"
        value /= 1024
    return str(count)


def status(url: URL = DEFAULT_URL) -> None:
    """Show cluster health and the node table."""

    async def work(client: Client) -> tuple[tuple[int, dict[str, Any]], list[dict[str, Any]]]:
        return await client.health(), await client.nodes()

    (code, health), nodes = _run(url, work)
    out = Console(width=max(Console().width, 100))
    colour = "green" if code == 200 else "red"
    out.print(
        f"[{colour}]{health['status']}[/{colour}]: {health['live_nodes']} of "
        f"{health['total_nodes']} nodes live; {health['redundancy']} needs "
        f"{health['needed_nodes']}"
    )
    table = Table("node", "address", "state", "used", "free", "chunks", "heard")
    now = datetime.now(UTC)
    for node in nodes:
        state = node["state"]
        heard_s = (now - datetime.fromisoformat(node["last_heartbeat"])).total_seconds()
        table.add_row(
            node["id"][:8],
            node["address"],
            f"[green]{state}[/green]" if state == "up" else f"[red]{state}[/red]",
            _size(node["used"]),
            _size(node["free"]),
            str(node["chunks"]),
            f"{heard_s:.0f} s ago",
        )
    out.print(table)
