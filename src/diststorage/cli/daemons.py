"""`diststorage node`, `gateway` and `up`: the daemons and the local cluster."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from diststorage.cli.flags import settings_command
from diststorage.core.credentials import Credentials
from diststorage.core.logs import LogFormat
from diststorage.core.settings import (
    MAX_DEFAULT_GATEWAY_WORKERS,
    MAX_GATEWAY_WORKERS,
    METADATA_URL_ENV,
    GatewaySettings,
    NodeSettings,
)

if TYPE_CHECKING:
    from diststorage.local import LocalCluster


def _run_node(settings: NodeSettings) -> None:
    from diststorage.node import run_node

    with _refused_without_credential(settings.cluster_dir, settings.insecure_cluster):
        run_node(settings)


def _run_gateway(settings: GatewaySettings) -> None:
    from diststorage.gateway import run_gateway

    with _refused_without_credential(settings.cluster_dir, settings.insecure_cluster):
        run_gateway(settings)


@contextlib.contextmanager
def _refused_without_credential(cluster_dir: Path | None, insecure: bool) -> Iterator[None]:
    """A daemon with neither --cluster-dir nor --insecure-cluster, or with an unusable cluster
    folder, exits 2 with one line that says why, before it binds anything."""
    from diststorage.core.cluster_tls import MISSING_HINT, ClusterCredentialsError

    console = Console(stderr=True)
    if cluster_dir is None and not insecure:
        console.print(f"[red]refusing to start without a cluster credential:[/red] {MISSING_HINT}")
        raise typer.Exit(2)
    try:
        yield
    except ClusterCredentialsError as error:
        console.print(f"[red]refusing to start:[/red] {error}")
        raise typer.Exit(2) from error


def _migrate(settings: GatewaySettings) -> None:
    import asyncio

    from diststorage.core.filemodes import make_private_dir
    from diststorage.meta import MetadataStore

    if settings.metadata_url is None:
        make_private_dir(settings.data_dir)

    async def run() -> None:
        store = await MetadataStore.open(settings.database_url, settings.db_timeout_s)
        await store.close()

    asyncio.run(run())


node = settings_command(
    NodeSettings,
    _run_node,
    "Run a storage node (or, with a subcommand, manage one through a gateway).",
    with_subcommands=True,
)
gateway = settings_command(
    GatewaySettings, _run_gateway, "Run a gateway: HTTP API, heartbeats, metadata."
)
migrate = settings_command(
    GatewaySettings,
    _migrate,
    "Bring the metadata schema to the newest revision (gateways also do it on start).",
    fields=("metadata_url", "data_dir"),
)


_WorkersOption = Annotated[
    int | None,
    typer.Option(
        min=1,
        max=MAX_GATEWAY_WORKERS,
        help="worker processes of each gateway (default: one per core up to "
        f"{MAX_DEFAULT_GATEWAY_WORKERS} with --metadata, else 1)",
    ),
]

_INSECURE_HELP = (
    "plaintext, unauthenticated gRPC links between the daemons instead of mutual TLS under "
    "the cluster CA made in DATA/cluster (experiments)"
)


def up(
    nodes: Annotated[int, typer.Option(min=1, help="storage nodes to start")] = 6,
    data: Annotated[Path, typer.Option(help="folder for every process's data")] = Path("./data"),
    port: Annotated[int, typer.Option(help="HTTP port; gRPC uses the next one")] = 7001,
    redundancy: Annotated[str, typer.Option(help="default redundancy")] = "ec:4+2",
    gateways: Annotated[
        int, typer.Option(min=1, help="gateways, on ports PORT, PORT+2, ... (needs --metadata)")
    ] = 1,
    # Also from the gateways' own variable: a URL with a password stays out of argv.
    metadata: Annotated[
        str | None,
        typer.Option(help="PostgreSQL URL shared by the gateways", envvar=METADATA_URL_ENV),
    ] = None,
    anonymous: Annotated[
        bool,
        typer.Option(help="serve the native object API without authentication (experiments)"),
    ] = False,
    s3_port: Annotated[
        int, typer.Option(help="S3 port of the first gateway; the others take the next ones")
    ] = 9000,
    insecure_cluster: Annotated[bool, typer.Option(help=_INSECURE_HELP)] = False,
    log_format: Annotated[
        LogFormat, typer.Option(help="every daemon's log lines as text or as JSON objects")
    ] = LogFormat.TEXT,
    workers: _WorkersOption = None,
) -> None:
    """Start a local cluster (gateways and N nodes) until Ctrl-C or SIGTERM."""
    console = Console()
    GatewaySettings(redundancy=redundancy)  # fails fast on a bad spec
    if gateways > 1 and not (metadata or "").startswith(("postgresql", "postgres")):
        console.print(
            "[red]several gateways share one metadata database:[/red] "
            "give --metadata postgresql://USER@HOST:PORT/DB"
        )
        raise typer.Exit(2)
    cluster = _cluster(data, nodes, port, gateways, metadata, redundancy, s3_port, workers)
    cluster.gateway_args = _gateway_args(anonymous, log_format)
    cluster.node_args = ["--log-format", log_format]
    cluster.insecure_cluster = insecure_cluster
    _run_until_stopped(console, cluster, redundancy, anonymous)


def _cluster(
    data: Path,
    nodes: int,
    port: int,
    gateways: int,
    metadata: str | None,
    redundancy: str,
    s3_port: int,
    workers: int | None,
) -> LocalCluster:
    from diststorage.local import LocalCluster

    return LocalCluster(
        data,
        nodes=nodes,
        http_port=port,
        grpc_port=port + 1,
        extra_gateway_ports=[(port + 2 * i, port + 2 * i + 1) for i in range(1, gateways)],
        metadata_url=metadata,
        redundancy=redundancy,
        s3_ports=[s3_port + i for i in range(gateways)],
        gateway_workers=workers,
    )


def _gateway_args(anonymous: bool, log_format: LogFormat) -> list[str]:
    # A local cluster is a trusted setup: its nodes join on their first beat, whatever
    # DISTSTORAGE_GATEWAY_NODE_ADMISSION says.
    return [
        "--node-admission",
        "open",
        *(["--anonymous"] if anonymous else []),
        "--log-format",
        log_format,
    ]


def _run_until_stopped(
    console: Console, cluster: LocalCluster, redundancy: str, anonymous: bool
) -> None:
    """Starts the cluster, says where it is, and stops it on Ctrl-C or SIGTERM."""
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with console.status(f"starting a gateway and {cluster.nodes} nodes in {cluster.data_dir}"):
        try:
            cluster.start()
        except (TimeoutError, RuntimeError) as error:
            console.print(f"[red]cluster did not start:[/red] {error}")
            raise typer.Exit(1) from error
    _print_endpoints(console, cluster, redundancy, cluster.data_dir)
    _print_root_key(console, cluster.root, cluster.root_credentials_path, anonymous)
    try:
        stop.wait()
    finally:
        with console.status("stopping"):
            cluster.stop()
        console.print("stopped")


def _print_endpoints(console: Console, cluster: LocalCluster, redundancy: str, data: Path) -> None:
    console.print(
        f"diststorage is up ({cluster.nodes} nodes, {redundancy}); logs in {data / 'logs'}. "
        "Ctrl-C stops it.\n"
        f"S3 endpoint:      [bold]{' '.join(cluster.s3_urls)}[/bold] (region us-east-1)\n"
        f"native endpoint:  [bold]{' '.join(cluster.urls)}[/bold]\n"
        f"dashboard:        [bold]{' '.join(url + '/_/ui' for url in cluster.urls)}[/bold] "
        "(log in with the root key below)",
        highlight=False,
    )


def _print_root_key(console: Console, root: Credentials, path: Path, anonymous: bool) -> None:
    """What a user needs to sign requests: the root key, and where the CLI finds it."""
    console.print(
        f"root access key:  [bold]{root.access_key_id}[/bold]\n"
        f"root secret key:  [bold]{root.secret_access_key}[/bold]\n"
        f"(kept in {path}, which the diststorage CLI reads from this folder; other tools: "
        "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or curl --aws-sigv4 "
        '"aws:amz:us-east-1:s3" --user ID:SECRET)',
        highlight=False,
    )
    if anonymous:
        console.print("[yellow]--anonymous: the native object API takes unsigned requests[/yellow]")
