"""Alembic environment: runs migrations on the connection handed over by tally.storage.migrate."""

from alembic import context

from tally.storage.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True,
                  compare_type=True)
with context.begin_transaction():
    context.run_migrations()
