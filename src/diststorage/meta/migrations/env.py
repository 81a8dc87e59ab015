"""Alembic environment: always run with a connection handed in by diststorage.meta.engine."""

from alembic import context

import diststorage.meta.multipart_models  # noqa: F401  (its tables join Base.metadata)
from diststorage.meta.models import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
