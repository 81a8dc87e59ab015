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
    ctx: typer.Context,
    listen: Annotated[str | None, typer.Option(help="HOST:PORT to serve gRPC on")] = None,
    data: Annotated[Path | None, typer.Option(help="folder for chunks and identity")] = None,
    gateway: Annotated[
        list[str] | None, typer.Option(help="gateway gRPC HOST:PORT (repeatable)")
    ] = None,
    gateway_dns: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME:PORT",
            help="a DNS name whose every address is a gateway, looked up every 10 s"
            " by default (repeatable)",
        ),
    ] = None,
    capacity: Annotated[int | None, typer.Option(help="bytes this node may store")] = None,
    advertise: Annotated[str | None, typer.Option(help="address gateways dial")] = None,
    scrub_rate: Annotated[
        int | None,
        typer.Option(metavar="BYTES_PER_S", help="scrubber read rate; 0 disables the scrubber"),
    ] = None,
    scrub_interval: Annotated[
        float | None, typer.Option(metavar="SECONDS", help="pause between scrub passes")
    ] = None,
) -> None:
    """Run a storage node (or, with a subcommand, manage one through a gateway)."""
    if ctx.invoked_subcommand is not None:
        return
    from diststorage.node import run_node

    settings = NodeSettings(
        **_given(
            listen=listen,
            data_dir=data,
            gateways=tuple(gateway or ()),
            gateway_dns=tuple(gateway_dns or ()),
            capacity_bytes=capacity,
            advertise=advertise,
            scrub_bytes_per_s=scrub_rate,
            scrub_interval_s=scrub_interval,
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
    node_suspect: Annotated[
        float | None, typer.Option(help="seconds of silence → suspect (no new writes)")
    ] = None,
    repair_grace: Annotated[
        float | None, typer.Option(help="seconds a node may be down before repair rebuilds")
    ] = None,
    repair_rate: Annotated[
        int | None, typer.Option(help="repair and rebalance bandwidth, bytes per second")
    ] = None,
    repair: Annotated[
        bool | None, typer.Option("--repair/--no-repair", help="run the repair worker")
    ] = None,
    gc_grace: Annotated[
        float | None,
        typer.Option(help="seconds before abandoned uploads and unreferenced chunks go"),
    ] = None,
    lease_ttl: Annotated[
        float | None,
        typer.Option(help="seconds before another gateway takes over the background workers"),
    ] = None,
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
            node_suspect_s=node_suspect,
            repair_grace_s=repair_grace,
            repair_bytes_per_s=repair_rate,
            repair_enabled=repair,
            gc_grace_s=gc_grace,
            lease_ttl_s=lease_ttl,
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
    gateways: Annotated[
        int, typer.Option(min=1, help="gateways, on ports PORT, PORT+2, ... (needs --metadata)")
    ] = 1,
    metadata: Annotated[
        str | None, typer.Option(help="PostgreSQL URL shared by the gateways")
    ] = None,
) -> None:
    """Start a local cluster (gateways and N nodes) until Ctrl-C or SIGTERM."""
    from rich.console import Console

    from diststorage.local import LocalCluster

    console = Console()
    GatewaySettings(redundancy=redundancy)  # fails fast on a bad spec
    if gateways > 1 and not (metadata or "").startswith(("postgresql", "postgres")):
        console.print(
            "[red]several gateways share one metadata database:[/red] "
            "give --metadata postgresql://USER@HOST:PORT/DB"
        )
        raise typer.Exit(2)
    cluster = LocalCluster(
        data,
        nodes=nodes,
        http_port=port,
        grpc_port=port + 1,
        extra_gateway_ports=[(port + 2 * i, port + 2 * i + 1) for i in range(1, gateways)],
        metadata_url=metadata,
        redundancy=redundancy,
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
        f"diststorage is up at [bold]{' '.join(cluster.urls)}[/bold] "
        f"({nodes} nodes, {redundancy}); logs in {data / 'logs'}. Ctrl-C stops it."
    )
    try:
        stop.wait()
    finally:
        with console.status("stopping"):
            cluster.stop()
        console.print("stopped")
