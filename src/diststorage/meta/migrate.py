"""Schema migrations through Alembic, on a connection the caller opened.

Alembic is imported only here, when a migration runs: the gateway runs migrations in a
short-lived `diststorage migrate` process, so Alembic and its templates (~10 MiB) never sit
in the long-running gateway's memory.
"""

from __future__ import annotations

from sqlalchemy import Connection

MIGRATIONS = "diststorage.meta:migrations"
# Any fixed number: the advisory lock that lets one gateway migrate while the others wait.
MIGRATION_LOCK_KEY = 0x6469_7374_6D69_67  # "distmig"


def upgrade(connection: Connection) -> None:
    """Brings the schema to the newest revision; a no-op when it is there already."""
    from alembic import command
    from alembic.config import Config

    if connection.dialect.name == "postgresql":
        # Several gateways starting together would race to create the same tables; the lock
        # is held until this transaction ends, and the others then find the schema current.
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
