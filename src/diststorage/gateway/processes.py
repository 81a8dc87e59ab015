"""How many processes a gateway is: ``run_gateway`` runs one gateway in this process
(``app``), or, with ``--workers`` N > 1, becomes the supervisor of N worker processes
(``pool.supervisor``), each of which runs ``run_gateway_worker`` (``worker_main``)."""

from __future__ import annotations

import logging
import sys
from typing import Any

from diststorage.core.cluster_tls import load_authority
from diststorage.core.daemon import run_daemon
from diststorage.core.logs import configure_logging
from diststorage.core.settings import GatewaySettings
from diststorage.gateway import app
from diststorage.gateway.pool import WorkerHandoff, die_with_parent, run_supervisor

log = logging.getLogger(__name__)

# The workers' grace beyond the gRPC one: the HTTP requests in flight (aiohttp's 60 s).
HTTP_GRACE_S = 60.0


def run_gateway(settings: GatewaySettings) -> None:
    """Blocking entry point for the CLI: one gateway in this process, or with several
    workers the supervisor of their processes (exits with its code).

    Raises ClusterCredentialsError, before any worker starts, when the cluster folder is
    unusable."""
    count = settings.worker_count
    if count == 1:
        app.run_gateway(settings)
        return
    configure_logging("gateway", settings.log_format)
    if settings.database_url.startswith("sqlite"):
        log.warning(
            "%d workers on one SQLite file: their writes contend for its lock, and some fail "
            "(503) under concurrent writes; PostgreSQL (--metadata) suits several workers",
            count,
        )
    if settings.cluster_dir is not None:
        load_authority(settings.cluster_dir)
    command = [sys.executable, "-m", "diststorage.gateway.worker_main"]
    grace_s = settings.shutdown_grace_s + HTTP_GRACE_S
    code = run_supervisor(command, worker_settings(settings), count, grace_s)
    if code != 0:
        raise SystemExit(code)


def worker_settings(settings: GatewaySettings) -> dict[str, Any]:
    """The settings for a worker's handoff (see pool.role): by field name, the root key's
    secret revealed (the handoff travels over a pipe, never argv or the environment)."""
    document: dict[str, Any] = settings.model_dump(mode="json")
    secret = settings.root_secret_key
    document["root_secret_key"] = None if secret is None else secret.get_secret_value()
    return document


def run_gateway_worker() -> None:
    """Entry point of one worker process (``gateway.worker_main``): its handoff from stdin,
    then a gateway in that role until SIGTERM."""
    handoff = WorkerHandoff.decode(sys.stdin.buffer.read())
    die_with_parent(handoff.role.parent_pid)
    settings = GatewaySettings(**handoff.settings)
    gateway = app.Gateway(settings, role=handoff.role)
    run_daemon(f"gateway/{handoff.role.index}", gateway, settings.log_format)
