"""Client verbs: put, get, ls, rm, stat."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from diststorage.client import Client, ClientError

T = TypeVar("T")
URL = Annotated[str, typer.Option("--url", envvar="DISTSTORAGE_URL", help="gateway URL")]
DEFAULT_URL = "http://127.0.0.1:7001"
PROGRESS_AFTER_S = 1.0
console = Console(stderr=True)


def run_client(url: str, work: Callable[[Client], T]) -> T:
    """Runs ``work`` with a client of ``url``; an error it raises is printed and exits with 1."""
    try:
        return work(Client(url))
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
        result = run_client(
            url, lambda c: c.put_file(file, target, not create, redundancy, advance)
        )
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

    def work(client: Client) -> None:
        size = int(client.stat(key).get("content-length", 0))
        if target == "-":
            client.get_to(key, sys.stdout.buffer)
            return
        partial = Path(target + ".part")
        try:
            with _progress(size, f"get {key}") as advance, partial.open("wb") as sink:
                client.get_to(key, sink, advance)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)

    run_client(url, work)


def ls(prefix: Annotated[str, typer.Argument()] = "", url: URL = DEFAULT_URL) -> None:
    """List keys, optionally under PREFIX."""

    def work(client: Client) -> None:
        for item in client.list_all(prefix):
            typer.echo(f"{item['size']:>14}  {item['last_modified'][:19]}  {item['key']}")

    run_client(url, work)


def rm(key: str, url: URL = DEFAULT_URL) -> None:
    """Delete KEY."""
    run_client(url, lambda c: c.delete(key).raise_for_status())


def stat(key: str, url: URL = DEFAULT_URL) -> None:
    """Show KEY's size, ETag, type, redundancy and time."""
    headers = run_client(url, lambda c: c.stat(key))
    for name in ("Content-Length", "ETag", "Content-Type", "X-Redundancy", "Last-Modified"):
        typer.echo(f"{name:>15}: {headers.get(name.lower(), '')}")
