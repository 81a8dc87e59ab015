"""Schema migrations through Alembic, on a connection the caller opened."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection

MIGRATIONS = "diststorage.meta:migrations"


def upgrade(connection: Connection) -> None:
    """Brings the schema to the newest revision; a no-op when it is there already."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
