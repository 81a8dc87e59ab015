"""The migrations build exactly the schema the models describe, on both backends: a model
change without its migration (or the reverse) fails here, not on a user's upgraded database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import PG_ADMIN
from sqlalchemy import Connection, create_engine
from sqlalchemy.ext.asyncio import create_async_engine

from diststorage.core.ids import new_id
from diststorage.meta.migrate import upgrade
from diststorage.meta.models import Base


def migrate_and_compare(connection: Connection) -> list[Any]:
    upgrade(connection)
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


def test_sqlite_migrations_match_the_models(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    try:
        with engine.begin() as connection:
            assert migrate_and_compare(connection) == []
    finally:
        engine.dispose()


async def test_postgresql_migrations_match_the_models() -> None:
    name = f"diststorage_test_{new_id()[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        engine = create_async_engine(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}")
        try:
            async with engine.begin() as connection:
                assert await connection.run_sync(migrate_and_compare) == []
        finally:
            await engine.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
