"""Opening the state database: URL and password, SQLite pragmas and integrity, transactions.

SQLite (the default) runs in WAL mode with ``synchronous=FULL``, foreign keys and a busy
timeout; every write transaction starts with ``BEGIN IMMEDIATE`` so that a check and the write
that depends on it (the fencing check, a compare-and-set) cannot interleave with another writer.
PostgreSQL goes through psycopg 3 with pre-ping, connect and statement timeouts; its password
comes from a :class:`~sync.foundation.secrets.Secret` and never appears in a URL shown to anyone.

Every SQLAlchemy or driver error leaving this package is a
:class:`~sync.foundation.errors.StateError`
(``StateCorrupt`` for a damaged SQLite file) naming the database without its password.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    DBAPIError,
    IntegrityError,
    OperationalError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql.elements import ClauseElement

from sync.foundation.errors import ConfigError, StateCorrupt, StateError
from sync.foundation.secrets import REDACTOR, Secret
from sync.state.leases import check_fence
from sync.state.peek import OPERATIONAL_ADVICE, corrupt_message, is_corruption_code
from sync.state.rows import Fence

_DRIVERS = {"sqlite": "sqlite", "sqlite+pysqlite": "sqlite", "postgresql": "postgresql+psycopg",
            "postgresql+psycopg": "postgresql+psycopg"}
_WRITE = "icsync_write"  # execution option: BEGIN IMMEDIATE on SQLite
_NO_BEGIN = "icsync_no_begin"  # execution option: no BEGIN (pragmas that refuse a transaction)


def state_url(url: str, password: Secret | None = None) -> URL:
    """Parse ``url`` (SQLite or PostgreSQL), add ``password``, and register it for masking."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError("not a database URL; use sqlite:///path/state.db or "
                          "postgresql+psycopg://user@host/dbname", key="state.url") from None
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ConfigError(f"unsupported state database {parsed.drivername!r}; use sqlite or "
                          "postgresql+psycopg", key="state.url")
    parsed = parsed.set(drivername=driver)
    if password is not None:
        parsed = parsed.set(password=password.reveal())
    if parsed.password:
        REDACTOR.add(str(parsed.password))
    return parsed


def display(url: URL) -> str:
    """The URL as it may be shown: the password masked."""
    return url.render_as_string(hide_password=True)


def sqlite_path(url: URL) -> Path | None:
    """The file of a SQLite URL; None for an in-memory database or another backend."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def create_state_engine(url: URL, *, timeout: float) -> Engine:
    """An engine with the pragmas, timeouts and BEGIN handling described in the module doc."""
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(url, timeout)
    ms = int(timeout * 1000)
    return create_engine(url, pool_pre_ping=True, connect_args={
        "connect_timeout": max(1, math.ceil(timeout)), "application_name": "icsync",
        "options": f"-c statement_timeout={ms} -c lock_timeout={ms} -c TimeZone=UTC"})


def _sqlite_engine(url: URL, timeout: float) -> Engine:
    memory = sqlite_path(url) is None
    engine = create_engine(url, connect_args={"timeout": timeout, "check_same_thread": False},
                           **({"poolclass": StaticPool} if memory else {}))
    busy_ms = int(timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves, below
        for pragma in ("foreign_keys=ON", "synchronous=FULL", f"busy_timeout={busy_ms}"):
            dbapi_conn.execute(f"PRAGMA {pragma}")

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        options = conn.get_execution_options()
        if not options.get(_NO_BEGIN, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE" if options.get(_WRITE, False) else "BEGIN")

    return engine


def _wal(conn: Connection) -> None:
    """Put the SQLite file in WAL mode. While another connection holds a write lock on a file
    still in rollback mode (an instance creating the tables of a new state database), SQLite
    answers this switch "database is locked" at once, without waiting its busy timeout; it
    is tried again until that timeout has passed."""
    wait = conn.exec_driver_sql("PRAGMA busy_timeout").scalar() or 0
    deadline = time.monotonic() + int(wait) / 1000
    while True:
        try:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            return
        except OperationalError as exc:
            if "locked" not in str(exc.orig) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


def is_sqlite_corruption(exc: BaseException) -> bool:
    """True when ``exc`` is SQLite saying the file is damaged or not a database at all."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    return is_corruption_code(getattr(orig, "sqlite_errorcode", None))


_ADVICE: dict[type[SQLAlchemyError], str] = {
    IntegrityError: "the database refused the row (an id or key the schema does not allow)",
    DataError: "the value cannot be stored; reject it before it reaches the state database",
    OperationalError: OPERATIONAL_ADVICE,
}


def _reason(exc: SQLAlchemyError) -> str:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    first = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    return REDACTOR(first)


def translate(exc: SQLAlchemyError, where: str, action: str) -> Exception:
    """The icsync error for a SQLAlchemy error met while doing ``action`` on ``where``."""
    if isinstance(exc, StatementError) and not isinstance(exc, DBAPIError):
        orig = exc.orig  # a bad argument, found while binding it: the caller's mistake
        if isinstance(orig, ValueError):
            return ValueError(str(orig))
        if isinstance(orig, TypeError):
            return TypeError(str(orig))
    if is_sqlite_corruption(exc):
        return StateCorrupt(corrupt_message(where, _reason(exc)))
    advice = _ADVICE.get(type(exc), _ADVICE[OperationalError])
    return StateError(f"state database {where}: {action} failed: {_reason(exc)}; {advice}")


class Database:
    """An open engine plus the transaction helpers every query module uses."""

    def __init__(self, engine: Engine, url: URL) -> None:
        self.engine = engine
        self.url = url
        self.where = display(url)
        self.dialect = engine.dialect.name

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Translate SQLAlchemy errors raised inside into StateError (``from`` the original)."""
        try:
            yield
        except SQLAlchemyError as exc:
            raise translate(exc, self.where, action) from exc
        except UnicodeEncodeError as exc:  # sqlite3 encodes text before SQLAlchemy sees it
            raise ValueError(f"{action}: {exc.object[:40]!r} cannot be stored as UTF-8 "
                             f"({exc.reason}); reject such text before storing it") from exc

    @contextlib.contextmanager
    def read(self, action: str) -> Iterator[Connection]:
        """A read-only transaction (one consistent snapshot on SQLite)."""
        with self.errors(action), self.engine.connect() as conn, conn.begin():
            yield conn

    def driver_sql(self, stmt: ClauseElement) -> tuple[str, Any]:
        """``stmt`` as its driver runs it: SQL text, and the parameters as a tuple in order
        (a positional paramstyle such as SQLite's ``?``) or a mapping by name."""
        compiled = stmt.compile(dialect=self.engine.dialect,
                                compile_kwargs={"render_postcompile": True})
        params: Any = compiled.params
        order = getattr(compiled, "positiontup", None)
        if order is not None:
            params = tuple(params[name] for name in order)
        return str(compiled), params

    def read_tuples(self, action: str, stmt: ClauseElement) -> list[tuple[Any, ...]]:
        """The rows of ``stmt`` as plain tuples, fetched on the driver's own cursor: a million
        rows without a million SQLAlchemy Row objects (three times faster)."""
        sql, params = self.driver_sql(stmt)
        with self.read(action) as conn:
            cursor = conn.connection.cursor()
            try:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
            finally:
                cursor.close()

    @contextlib.contextmanager
    def write(self, action: str, fence: Fence | None = None) -> Iterator[Connection]:
        """A write transaction; with ``fence``, first checks the lease in the same transaction.

        Anything raised inside (LeaseLost included) rolls the whole transaction back.
        """
        with self.errors(action), self.engine.connect() as conn:
            conn.execution_options(**{_WRITE: True})
            with conn.begin():
                if fence is not None:
                    check_fence(conn, fence)
                yield conn

    def check_integrity(self, *, quick_check: bool = True) -> None:
        """SQLite only: set WAL and (unless ``quick_check`` is False) run ``PRAGMA
        quick_check``, which reads the whole file; StateCorrupt when it fails."""
        if self.dialect != "sqlite":
            return
        with self.errors("integrity check"), self.engine.connect() as conn:
            conn.execution_options(**{_NO_BEGIN: True})
            if sqlite_path(self.url) is not None:
                _wal(conn)
            if not quick_check:
                return
            problems = [r[0] for r in conn.exec_driver_sql("PRAGMA quick_check(5)") if r[0] != "ok"]
        if problems:
            raise StateCorrupt(corrupt_message(self.where, "; ".join(problems)))

    def ping(self) -> None:
        """Run a trivial query; StateError when the database cannot be reached."""
        with self.read("ping") as conn:
            conn.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()
