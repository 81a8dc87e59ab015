"""`diststorage cluster init DIR`: the cluster CA every daemon's gRPC links are secured with
(see core/cluster_tls.py for what DIR holds and why)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

cluster_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Manage the cluster's credential."
)


@cluster_app.command()
def init(
    directory: Annotated[Path, typer.Argument(metavar="DIR", help="folder to write the CA into")],
) -> None:
    """Write a new cluster CA (ca.pem, ca.key; folder 0700, files 0600) into DIR, for every
    gateway and node to be started with --cluster-dir DIR. A DIR that holds one is kept."""
    from diststorage.core.cluster_tls import init_cluster_dir

    console = Console()
    if init_cluster_dir(directory):
        console.print(f"cluster CA written to {directory}; keep it as secret as the data")
    else:
        console.print(f"{directory} holds a cluster CA already; kept as it is")
