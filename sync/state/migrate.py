"""Alembic migrations, run in code at open: a state database is migrated, never recreated.

The scripts live in ``sync/state/migrations`` inside the package, so this works from an
installed wheel as well as from a checkout; no ``alembic.ini`` is involved. On PostgreSQL an
advisory lock serialises instances that start together; on SQLite ``BEGIN IMMEDIATE`` does.
Migrations run in one transaction: a failure leaves the database at its old revision.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    inspect,
    text,
)

from sync.foundation.errors import StateError
from sync.state.db import Database
from sync.state.peek import HEAD as HEAD  # re-exported: the migrations and tests use them here
from sync.state.peek import VERSION_TABLE as VERSION_TABLE

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x1C5_7A7E  # pg_advisory_xact_lock key: "icsync state"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration built in code, optionally bound to an open connection."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision among the migration scripts (Alembic reads them)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StateError("sync/state/migrations/versions holds no revision")
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision the database is at; None for an empty database."""
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    if len(rows) > 1:
        raise StateError(f"the {VERSION_TABLE} table holds {len(rows)} revisions {rows}; "
                         "restore a backup of the state database")
    return str(rows[0]) if rows else None


def _refuse_unknown(revision: str | None, where: str) -> None:
    """StateError when the database is at a revision this icsync does not know (a newer one)."""
    if revision is None or revision == HEAD:
        return
    from alembic.script import ScriptDirectory
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

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
        revision = current_revision(conn)
        _refuse_unknown(revision, db.where)
        if revision == HEAD and target in ("head", HEAD):
            return
        from alembic import command
        from alembic.util import CommandError

        try:
            command.upgrade(alembic_config(conn), target)
        except CommandError as exc:
            raise StateError(f"state database {db.where}: migration failed: {exc}") from exc


def create_fresh(db: Database) -> bool:
    """On a database without any table: the head schema built from the tables of
    :mod:`sync.state.models` and stamped at HEAD, in one transaction, without loading Alembic
    or replaying every revision (a test keeps the result equal to the migrations'). False,
    with nothing done, when the database holds any table: it is then migrated."""
    from sync.state.models import metadata

    with db.write("creating the schema") as conn:
        if db.dialect == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        if inspect(conn).get_table_names():
            return False
        metadata.create_all(conn)
        version = _version_table()
        version.create(conn)
        conn.execute(version.insert().values(version_num=HEAD))
    return True


def _version_table() -> Table:
    """The revision table as Alembic makes it (see ``MigrationContext``)."""
    return Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), nullable=False),
                 PrimaryKeyConstraint("version_num", name=f"{VERSION_TABLE}_pkc"))


def ensure_schema(db: Database, *, migrate: bool) -> None:
    """Migrate to the head (an empty database: create it at the head), or
    (``migrate=False``) refuse a database not at the head."""
    with db.read("reading the schema revision") as conn:
        revision = current_revision(conn)
    if revision == HEAD:
        return  # the usual case: no write, no lock, no Alembic
    if migrate:
        if revision is None and create_fresh(db):
            return
        upgrade(db)
        return
    _refuse_unknown(revision, db.where)
    raise StateError(f"state database {db.where} is at schema revision {revision}, this "
                     f"icsync needs {HEAD}; open it with migrations enabled (the default) to "
                     "upgrade it in place")
