"""Alembic environment: runs on the connection that :mod:`sync.state.migrate` opened.

There is no ``alembic.ini`` and no offline (``--sql``) mode: icsync migrates its own database
at open, inside the transaction (and lock) that ``sync.state.migrate.upgrade`` holds.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from sync.state.migrate import VERSION_TABLE


def run_migrations_online() -> None:
    """Run the pending revisions on the connection handed over in ``config.attributes``."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("icsync migrations run through sync.state.migrate.upgrade only")
    context.configure(connection=connection, version_table=VERSION_TABLE,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("icsync migrations have no offline mode; they run at open")
run_migrations_online()
