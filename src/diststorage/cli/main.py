"""The `diststorage` command: daemons, local cluster and client verbs."""

from __future__ import annotations

import typer

from diststorage.cli import client_verbs, daemons

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="diststorage: a distributed, erasure-coded file and object store.",
)
app.command()(daemons.up)
app.command()(daemons.gateway)
app.command()(daemons.node)
app.command()(daemons.migrate)
for verb in (
    client_verbs.put,
    client_verbs.get,
    client_verbs.ls,
    client_verbs.rm,
    client_verbs.stat,
    client_verbs.status,
):
    app.command()(verb)
