"""The `diststorage` command: daemons, local cluster and client verbs."""

from __future__ import annotations

import typer

from diststorage.cli import account_verbs, admin_verbs, client_verbs, cluster_verbs, daemons

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="diststorage: a distributed, erasure-coded file and object store.",
)
app.command()(daemons.up)
app.command(name="gateway")(daemons.gateway)
node_app = typer.Typer(
    invoke_without_command=True,
    add_completion=False,
    help="Run a storage node, or accept, drain, activate or remove one.",
)
node_app.callback()(daemons.node)
node_app.command()(admin_verbs.accept)
node_app.command()(admin_verbs.drain)
node_app.command()(admin_verbs.activate)
node_app.command()(admin_verbs.remove)
app.add_typer(node_app, name="node")
app.command(name="migrate")(daemons.migrate)
app.add_typer(cluster_verbs.cluster_app, name="cluster")
app.add_typer(account_verbs.key_app, name="key")
app.add_typer(account_verbs.bucket_app, name="bucket")
for verb in (
    client_verbs.put,
    client_verbs.get,
    client_verbs.ls,
    client_verbs.rm,
    client_verbs.stat,
    admin_verbs.status,
    admin_verbs.rebalance,
):
    app.command()(verb)
