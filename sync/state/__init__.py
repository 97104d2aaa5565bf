"""icsync's state database (SQLite or PostgreSQL): models, Alembic migrations and the stores.

See :mod:`sync.state.store` (the full store) and :mod:`sync.state.peek` (the read-only look the
operator commands use, without SQLAlchemy). Imports the foundation only. The package itself
imports nothing, so that importing :mod:`sync.state.rows` or :mod:`sync.state.peek` does not
load SQLAlchemy.
"""
