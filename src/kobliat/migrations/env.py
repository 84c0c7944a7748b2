"""Alembic environment: runs on the connection kobliat.db.migrate hands it."""

from __future__ import annotations

from alembic import context

from kobliat.db.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through `kobliat migrate` (kobliat.db.migrate)")

context.configure(connection=connection, target_metadata=metadata, transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
