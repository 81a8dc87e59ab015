"""A PostgreSQL server of the run's own, in a temporary folder, that the run may restart.

The shared server on 127.0.0.1:5432 belongs to everyone on the machine; a benchmark that
restarts its database as a fault needs one nobody else uses. ``initdb`` and ``pg_ctl`` come
from the distribution's PostgreSQL (on PATH, or under /usr/lib/postgresql/*/bin). The server
listens on 127.0.0.1 only, with trust authentication, and is stopped (fast) on the way out.

PostgreSQL refuses to run as root: run as root (a container, CI), the server runs as the
``postgres`` account, in a folder of its own under the system temp folder (the run's own
temp folder is private to root), removed at the end.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from diststorage.local import free_port

START_TIMEOUT_S = 60
DATABASE = "diststorage"


class PostgresMissing(Exception):
    """No ``initdb`` / ``pg_ctl`` on this machine."""


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True):
        return candidate
    raise PostgresMissing(f"{name} not found (install the postgresql package)")


def _as_server_user() -> list[str]:
    """The prefix that runs a PostgreSQL tool as an account it accepts."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresMissing("running as root and there is no postgres account") from exc
    return ["runuser", "-u", "postgres", "--"]


def _run(*argv: str) -> None:
    subprocess.run(
        [*_as_server_user(), *argv],
        check=True,
        capture_output=True,
        env={**os.environ, "LC_ALL": "C"},
    )


@dataclass
class PrivatePostgres:
    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _pg_ctl(self, *args: str) -> None:
        data = str(self.folder / "data")
        _run(_tool("pg_ctl"), "-D", data, "-w", "-t", str(START_TIMEOUT_S), *args)

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder}"
            " -c fsync=on -c max_connections=200"
        )
        self._pg_ctl("-l", str(self.folder / "server.log"), "-o", options, "start")

    def restart(self) -> float:
        """Stops the server (fast: open connections are cut) and starts it again; the seconds
        it was away."""
        started = time.monotonic()
        self._pg_ctl("-m", "fast", "stop")
        self.start()
        return time.monotonic() - started

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._pg_ctl("-m", "fast", "stop")


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh server with an empty database ``diststorage``, stopped and removed when the
    block ends."""
    prefix = _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="diststorage-pg-"))
    try:
        if prefix:
            account = pwd.getpwnam("postgres")
            os.chown(folder, account.pw_uid, account.pw_gid)
        _run(_tool("initdb"), "-D", str(folder / "data"), "-U", "postgres", "--auth=trust")
        server = PrivatePostgres(folder, free_port())
        server.start()
        try:
            _run(
                _tool("createdb"),
                "-h",
                "127.0.0.1",
                "-p",
                str(server.port),
                "-U",
                "postgres",
                DATABASE,
            )
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
