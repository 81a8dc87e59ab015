"""`diststorage node`, `gateway` and `up`: the daemons and the local cluster."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from diststorage.core.settings import GatewaySettings, NodeSettings


def _given(**values: Any) -> dict[str, Any]:
    """Only the flags the user gave, so environment variables and defaults fill the rest."""
    return {name: value for name, value in values.items() if value not in (None, [], ())}


def node(
    listen: Annotated[str | None, typer.Option(help="HOST:PORT to serve gRPC on")] = None,
    data: Annotated[Path | None, typer.Option(help="folder for chunks and identity")] = None,
    gateway: Annotated[
        list[str] | None, typer.Option(help="gateway gRPC HOST:PORT (repeatable)")
    ] = None,
    capacity: Annotated[int | None, typer.Option(help="bytes this node may store")] = None,
    advertise: Annotated[str | None, typer.Option(help="address gateways dial")] = None,
) -> None:
    """Run a storage node."""
    from diststorage.node import run_node

    settings = NodeSettings(
        **_given(
            listen=listen,
            data_dir=data,
            gateways=tuple(gateway or ()),
            capacity_bytes=capacity,
            advertise=advertise,
        )
    )
    run_node(settings)


def gateway(
    listen: Annotated[str | None, typer.Option(help="HTTP HOST:PORT")] = None,
    grpc_listen: Annotated[str | None, typer.Option(help="gRPC HOST:PORT for heartbeats")] = None,
    data: Annotated[Path | None, typer.Option(help="folder for metadata and identity")] = None,
    metadata: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the metadata DB")] = None,
    redundancy: Annotated[str | None, typer.Option(help="default ec:K+M or replicate:N")] = None,
    stripe_size: Annotated[int | None, typer.Option(help="stripe size in bytes")] = None,
    node_timeout: Annotated[float | None, typer.Option(help="seconds of silence → down")] = None,
) -> None:
    """Run a gateway: HTTP API, heartbeats, metadata."""
    from diststorage.gateway.app import run_gateway

    settings = GatewaySettings(
        **_given(
            listen=listen,
            grpc_listen=grpc_listen,
            data_dir=data,
            metadata_url=metadata,
            redundancy=redundancy,
            stripe_size_bytes=stripe_size,
            node_timeout_s=node_timeout,
        )
    )
    run_gateway(settings)


def migrate(
    metadata: Annotated[str | None, typer.Option(help="SQLAlchemy URL of the metadata DB")] = None,
    data: Annotated[
        Path | None, typer.Option(help="gateway folder (for the SQLite default)")
    ] = None,
) -> None:
    """Bring the metadata schema to the newest revision (gateways also do it on start)."""
    import asyncio

    from diststorage.meta import MetadataStore

    settings = GatewaySettings(**_given(metadata_url=metadata, data_dir=data))
    if settings.metadata_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)

    async def run() -> None:
        store = await MetadataStore.open(settings.database_url, settings.db_timeout_s)
        await store.close()

    asyncio.run(run())


def up(
    nodes: Annotated[int, typer.Option(min=1, help="storage nodes to start")] = 6,
    data: Annotated[Path, typer.Option(help="folder for every process's data")] = Path("./data"),
    port: Annotated[int, typer.Option(help="HTTP port; gRPC uses the next one")] = 7001,
    redundancy: Annotated[str, typer.Option(help="default redundancy")] = "ec:4+2",
) -> None:
    """Start a local cluster (one gateway, N nodes) until Ctrl-C or SIGTERM."""
    from rich.console import Console

    from diststorage.local import LocalCluster

    console = Console()
    GatewaySettings(redundancy=redundancy)  # fails fast on a bad spec
    cluster = LocalCluster(
        data, nodes=nodes, http_port=port, grpc_port=port + 1, redundancy=redundancy
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    with console.status(f"starting a gateway and {nodes} nodes in {data}"):
        try:
            cluster.start()
        except (TimeoutError, RuntimeError) as error:
            console.print(f"[red]cluster did not start:[/red] {error}")
            raise typer.Exit(1) from error
    console.print(
        f"diststorage is up at [bold]{cluster.url}[/bold] "
        f"({nodes} nodes, {redundancy}); logs in {data / 'logs'}. Ctrl-C stops it."
    )
    try:
        stop.wait()
    finally:
        with console.status("stopping"):
            cluster.stop()
        console.print("stopped")
