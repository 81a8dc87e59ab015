"""Schema migrations through Alembic, on a connection the caller opened.

Alembic is imported only here, when a migration runs: the gateway runs migrations in a
short-lived `diststorage migrate` process, so Alembic and its templates (~10 MiB) never sit
in the long-running gateway's memory.
"""

from __future__ import annotations

from sqlalchemy import Connection

MIGRATIONS = "diststorage.meta:migrations"


def upgrade(connection: Connection) -> None:
    """Brings the schema to the newest revision; a no-op when it is there already."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
