"""Operator verbs for accounts: ``key create|list|info|delete|disable|enable`` and
``bucket create|list|info|delete|allow|deny``, through the gateway's ``/_/admin/`` routes.

They authenticate as a key with admin rights: the root key, from the environment or a
credentials file (see ``client_verbs.resolve_credentials``).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from diststorage.cli.client_verbs import CREDENTIALS, DEFAULT_URL, URL, run_client

key_app = typer.Typer(no_args_is_help=True, add_completion=False, help="Manage access keys.")
bucket_app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Manage buckets and their grants."
)
KeyId = Annotated[str, typer.Argument(help="access key id")]
BucketName = Annotated[str, typer.Argument(help="bucket name")]
GrantKey = Annotated[str, typer.Option("--key", help="access key id the grant is for")]
AsJson = Annotated[bool, typer.Option("--json", help="print JSON")]
Read = Annotated[bool, typer.Option("--read", help="read: get, head and list")]
Write = Annotated[bool, typer.Option("--write", help="write: put, copy and delete objects")]
Owner = Annotated[bool, typer.Option("--owner", help="owner: delete and configure the bucket")]


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2))


@key_app.command("create")
def key_create(
    name: Annotated[str, typer.Argument(help="a name for the key's holder")],
    as_json: AsJson = False,
    no_create_bucket: Annotated[
        bool, typer.Option("--no-create-bucket", help="the key may not create buckets")
    ] = False,
    admin: Annotated[bool, typer.Option("--admin", help="every right, like the root key")] = False,
    url: URL = DEFAULT_URL,
    credentials: CREDENTIALS = None,
) -> None:
    """Create an access key; its secret is shown this once."""
    key = run_client(
        url,
        lambda c: c.accounts.create_key(name, not no_create_bucket, admin),
        credentials,
    )
    if as_json:
        _print_json(key)
        return
    typer.echo(f"access_key_id:     {key['access_key_id']}")
    typer.echo(f"secret_access_key: {key['secret_access_key']}")
    Console(stderr=True).print("[yellow]the secret is not shown again: keep it now[/yellow]")


@key_app.command("list")
def key_list(
    as_json: AsJson = False, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None
) -> None:
    """List access keys (never their secrets)."""
    keys = run_client(url, lambda c: c.accounts.list_keys(), credentials)
    if as_json:
        _print_json(keys)
        return
    table = Table("access key id", "name", "state", "create buckets", "admin", "created")
    for key in keys:
        table.add_row(
            key["access_key_id"],
            key["name"],
            key["state"],
            "yes" if key["can_create_buckets"] else "no",
            "yes" if key["is_admin"] else "no",
            key["created_at"][:19],
        )
    Console().print(table)


@key_app.command("info")
def key_info(key_id: KeyId, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Show a key and its grants."""
    _print_json(run_client(url, lambda c: c.accounts.key(key_id), credentials))


@key_app.command("delete")
def key_delete(key_id: KeyId, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Delete a key and its grants (the buckets it owns stay)."""
    run_client(url, lambda c: c.accounts.delete_key(key_id), credentials)
    typer.echo(f"key {key_id} deleted")


@key_app.command("disable")
def key_disable(key_id: KeyId, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Refuse the key everywhere (within seconds); its grants are kept."""
    run_client(url, lambda c: c.accounts.disable_key(key_id), credentials)
    typer.echo(f"key {key_id} disabled")


@key_app.command("enable")
def key_enable(key_id: KeyId, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Accept a disabled key again."""
    run_client(url, lambda c: c.accounts.enable_key(key_id), credentials)
    typer.echo(f"key {key_id} enabled")


@bucket_app.command("create")
def bucket_create(
    name: BucketName,
    owner: Annotated[
        str | None, typer.Option(help="access key id that owns it (default: yours)")
    ] = None,
    url: URL = DEFAULT_URL,
    credentials: CREDENTIALS = None,
) -> None:
    """Create a bucket; its owner gets read, write and owner on it."""
    bucket = run_client(url, lambda c: c.accounts.create_bucket(name, owner), credentials)
    typer.echo(f"bucket {bucket['name']} created, owned by {bucket['owner']}")


@bucket_app.command("list")
def bucket_list(
    as_json: AsJson = False, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None
) -> None:
    """List every bucket."""
    buckets = run_client(url, lambda c: c.accounts.list_buckets(), credentials)
    if as_json:
        _print_json(buckets)
        return
    table = Table("bucket", "owner", "created")
    for bucket in buckets:
        table.add_row(bucket["name"], bucket["owner"] or "-", (bucket["created_at"] or "-")[:19])
    Console().print(table)


@bucket_app.command("info")
def bucket_info(name: BucketName, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None) -> None:
    """Show a bucket and its grants."""
    _print_json(run_client(url, lambda c: c.accounts.bucket(name), credentials))


@bucket_app.command("delete")
def bucket_delete(
    name: BucketName, url: URL = DEFAULT_URL, credentials: CREDENTIALS = None
) -> None:
    """Delete an empty bucket."""
    run_client(url, lambda c: c.accounts.delete_bucket(name), credentials)
    typer.echo(f"bucket {name} deleted")


@bucket_app.command("allow")
def bucket_allow(
    bucket: BucketName,
    key: GrantKey,
    read: Read = False,
    write: Write = False,
    owner: Owner = False,
    url: URL = DEFAULT_URL,
    credentials: CREDENTIALS = None,
) -> None:
    """Give a key rights on a bucket (added to those it has)."""
    grant = run_client(
        url, lambda c: c.accounts.allow(bucket, key, read, write, owner), credentials
    )
    typer.echo(_grant_line(grant))


@bucket_app.command("deny")
def bucket_deny(
    bucket: BucketName,
    key: GrantKey,
    read: Read = False,
    write: Write = False,
    owner: Owner = False,
    url: URL = DEFAULT_URL,
    credentials: CREDENTIALS = None,
) -> None:
    """Take rights away from a key on a bucket; naming none takes them all."""
    grant = run_client(url, lambda c: c.accounts.deny(bucket, key, read, write, owner), credentials)
    typer.echo(_grant_line(grant))


def _grant_line(grant: dict[str, Any]) -> str:
    rights = [name for name in ("read", "write", "owner") if grant[name]]
    return f"{grant['key']} on {grant['bucket']}: {', '.join(rights) or 'no rights'}"
