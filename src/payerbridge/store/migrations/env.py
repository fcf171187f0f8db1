"""Alembic environment: runs on the connection handed over by ``store.engines.migrate``."""

from alembic import context

from payerbridge.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached through the alembic CLI
    raise RuntimeError("run migrations with `payerbridge db upgrade`")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
