"""Alembic migrations, run in code at open: a state database is migrated, never recreated.

The scripts live in ``sync/state/migrations`` inside the package, so this works from an
installed wheel as well as from a checkout; no ``alembic.ini`` is involved. On PostgreSQL an
advisory lock serialises instances that start together; on SQLite ``BEGIN IMMEDIATE`` does.
Migrations run in one transaction: a failure leaves the database at its old revision.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.script.revision import RevisionError
from alembic.util import CommandError
from sqlalchemy import Connection, text

from sync.foundation.errors import StateError
from sync.state.db import Database

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "icsync_schema_version"
_LOCK_KEY = 0x1C5_7A7E  # pg_advisory_xact_lock key: "icsync state"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration built in code, optionally bound to an open connection."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this version of icsync knows."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "sync/state/migrations/versions holds no revision"
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at; None for an empty database."""
    context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _refuse_unknown(revision: str | None, where: str) -> None:
    """StateError when the database is at a revision this icsync does not know (a newer one)."""
    if revision is None:
        return
    try:
        ScriptDirectory.from_config(alembic_config()).get_revision(revision)
    except (RevisionError, CommandError):
        raise StateError(
            f"state database {where} is at schema revision {revision}, which this icsync does "
            "not know: a newer version wrote it. Upgrade icsync, or restore a backup made by "
            "this version") from None


def upgrade(db: Database, target: str = "head") -> None:
    """Bring the schema to ``target`` (default: the head) in one transaction."""
    with db.write("migrating the schema") as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        _refuse_unknown(current_revision(conn), db.where)
        try:
            command.upgrade(alembic_config(conn), target)
        except CommandError as exc:
            raise StateError(f"state database {db.where}: migration failed: {exc}") from exc


def ensure_schema(db: Database, *, migrate: bool) -> None:
    """Migrate to the head, or (``migrate=False``) refuse a database not at the head."""
    if migrate:
        upgrade(db)
        return
    with db.read("reading the schema revision") as conn:
        revision = current_revision(conn)
    _refuse_unknown(revision, db.where)
    if revision != head_revision():
        raise StateError(f"state database {db.where} is at schema revision {revision}, this "
                         f"icsync needs {head_revision()}; open it with migrations enabled "
                         "(the default) to upgrade it in place")
