"""Client verbs: put, get, ls, rm, stat."""

from __future__ import annotations

import os
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
from diststorage.core.credentials import Credentials, read_credentials_file
from diststorage.core.errors import InvalidRequest
from diststorage.core.settings import ROOT_ACCESS_KEY_ENV, ROOT_SECRET_KEY_ENV

T = TypeVar("T")
URL = Annotated[str, typer.Option("--url", envvar="DISTSTORAGE_URL", help="gateway URL")]
DEFAULT_URL = "http://127.0.0.1:7001"
# Where `diststorage up` (with its default --data) writes the cluster's root key.
DEFAULT_CREDENTIALS_FILE = Path("./data/root-credentials")
CREDENTIALS = Annotated[
    Path | None,
    typer.Option(
        "--credentials",
        envvar="DISTSTORAGE_CREDENTIALS_FILE",
        help=f"JSON or INI file with the access key to sign with; default {ROOT_ACCESS_KEY_ENV}"
        f" and {ROOT_SECRET_KEY_ENV}, else {DEFAULT_CREDENTIALS_FILE} if it exists",
    ),
]
PROGRESS_AFTER_S = 1.0
console = Console(stderr=True)


def resolve_credentials(file: Path | None) -> Credentials | None:
    """The key the CLI signs with: the file given, else the root key in the environment, else
    the local cluster's file if there is one; None sends requests unsigned."""
    if file is not None:
        return read_credentials_file(file)
    key_id, secret = os.environ.get(ROOT_ACCESS_KEY_ENV), os.environ.get(ROOT_SECRET_KEY_ENV)
    if key_id and secret:
        return Credentials(key_id, secret)
    if DEFAULT_CREDENTIALS_FILE.is_file():
        return read_credentials_file(DEFAULT_CREDENTIALS_FILE)
    return None


def run_client(url: str, work: Callable[[Client], T], credentials: Path | None = None) -> T:
    """Runs ``work`` with a client of ``url`` signing with the key ``resolve_credentials``
    finds; an error it raises is printed and exits with 1."""
    try:
        signing = resolve_credentials(credentials)
    except (OSError, InvalidRequest) as error:
        console.print(f"[red]error:[/red] credentials: {error}")
        raise typer.Exit(2) from error
    try:
        return work(Client(url, credentials=signing))
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
    credentials: CREDENTIALS = None,
) -> None:
    """Upload FILE as KEY."""
    target = key or file.name
    with _progress(file.stat().st_size, f"put {target}") as advance:
        result = run_client(
            url,
            credentials=credentials,
            work=lambda c: c.put_file(file, target, not create, redundancy, advance),
        )
    typer.echo(
        f"{result['key']}  {result['size']} bytes  md5 {result['md5']}  {result['redundancy']}"
    )


def get(
    key: str,
    file: Annotated[str | None, typer.Argument(help="output path, or - for stdout")] = None,
    url: URL = DEFAULT_URL,
    credentials: CREDENTIALS = None,
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

    run_client(url, credentials=credentials, work=work)


def ls(
    prefix: Annotated[str, typer.Argument()] = "",
    url: URL = DEFAULT_URL,
    credentials: CREDENTIALS = None,
) -> None:
    """List keys, optionally under PREFIX."""

    def work(client: Client) -> None:
        for item in client.list_all(prefix):
            typer.echo(f"{item['size']:>14}  {item['last_modified'][:19]}  {item['key']}")

    run_client(url, credentials=credentials, work=work)


def rm(key: str, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Delete KEY."""
    run_client(url, credentials=credentials, work=lambda c: c.delete(key).raise_for_status())


def stat(key: str, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Show KEY's size, ETag, type, redundancy and time."""
    headers = run_client(url, credentials=credentials, work=lambda c: c.stat(key))
    for name in ("Content-Length", "ETag", "Content-Type", "X-Redundancy", "Last-Modified"):
        typer.echo(f"{name:>15}: {headers.get(name.lower(), '')}")
