"""Connections to any SQLAlchemy database and the sink's table shapes, shared by connectors.sql.

A password (from ``password_file`` or the caller) is set on the URL object, never formatted into
text, and masked in every message. Timeouts: SQLite gets a busy timeout plus a per-statement
deadline (a progress handler interrupts a statement running past ``timeout_seconds``);
PostgreSQL (psycopg) a connect timeout and ``statement_timeout``; MySQL (PyMySQL, mysqlclient)
connect and read timeouts; other dialects keep their driver's defaults. SQLite transactions are
begun explicitly: ``BEGIN IMMEDIATE`` on a connection with the :data:`WRITE` execution option,
so a writer holds the database's write lock from its first statement.

Table shapes: the canonical columns of the sink's header and line tables with their types, how
a configured mapping renames them, and how a table is defined when the sink creates it.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    DateTime,
    Integer,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    create_engine,
    event,
)
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DataError, DBAPIError, IntegrityError, NoSuchModuleError
from sqlalchemy.types import TypeEngine

from connectors.records import json_default
from sync.foundation.errors import ConfigError
from sync.foundation.secrets import REDACTOR, Secret

WRITE = "icsync_write"
_DEADLINE = "icsync_deadline"
_REJECTED_SQLSTATES = ("22", "23", "P0")
_KEY: TypeEngine[Any] = BigInteger().with_variant(Integer(), "sqlite")
_AMOUNT = Numeric(18, 4)
HEADER_TYPES: dict[str, TypeEngine[Any]] = {
    "id": _KEY, "transaction_id": String(64), "company": String(100), "company_id": String(64),
    "type": String(3), "identifier": String(100), "purchase_order": String(100),
    "supplier_code": String(50), "supplier_name": String(255), "title": Text(),
    "created": DateTime(timezone=True), "invoice_date": Date(), "payment_due": Date(),
    "delivery_date": Date(), "currency": String(3),
    **{f"{m}_{c}": _AMOUNT for c in ("base", "local") for m in ("net", "vat", "gross")},
    "status": String(10), "raw_json": Text(), "journal_number": String(64),
    "posted_at": DateTime(timezone=True),
}
LINE_TYPES: dict[str, TypeEngine[Any]] = {
    "id": _KEY, "transaction_id": String(64), "header_id": _KEY, "line_number": Integer(),
    "account_code": String(50), "tax_code": String(20), "description": Text(),
    "quantity": Numeric(18, 6), "unit_cost": Numeric(18, 6), "net": _AMOUNT, "vat": _AMOUNT,
    "gross": _AMOUNT, "analysis_json": Text(),
}


def make_engine(url: str, *, password: Secret | None, timeout: float, key: str) -> Engine:
    """An engine for ``url`` with ``password`` set and timeouts applied; ConfigError naming
    ``key`` when the URL is not one or its driver is not installed."""
    try:
        parsed = make_url(url)
        _ = parsed.port  # a port that is not a number fails here, not inside the driver
    except (ArgumentError, ValueError):
        raise ConfigError("not a database URL (is the port a number?); expected e.g. "
                          "sqlite:///erp.db or postgresql+psycopg://user@host:5432/db",
                          key=key) from None
    if password:
        parsed = parsed.set(password=password.reveal())
    if parsed.password:
        REDACTOR.add(str(parsed.password))
    try:
        engine = create_engine(parsed, pool_pre_ping=True,
                               connect_args=connect_args(parsed, timeout))
    except (NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"no driver for {parsed.drivername!r} ({exc}); install it or use "
                          f"another URL", key=key) from None
    if parsed.get_backend_name() == "sqlite":
        _sqlite_events(engine, timeout)
    return engine


def connect_args(url: URL, timeout: float) -> dict[str, Any]:
    """Driver arguments that bound connecting and each statement by ``timeout`` seconds."""
    seconds = max(1, math.ceil(timeout))
    backend, driver = url.get_backend_name(), url.get_driver_name()
    if backend == "sqlite":
        return {"timeout": timeout}
    if backend == "postgresql" and driver in ("psycopg", "psycopg2"):
        return {"connect_timeout": seconds, "options": f"-c statement_timeout={seconds * 1000}"}
    if backend in ("mysql", "mariadb") and driver in ("pymysql", "mysqldb"):
        return {"connect_timeout": seconds, "read_timeout": seconds}
    return {}


def _sqlite_events(engine: Engine, timeout: float) -> None:
    """Explicit transactions (BEGIN IMMEDIATE for writes) and a deadline per statement."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        deadline = record.info.setdefault(_DEADLINE, [math.inf])
        dbapi_conn.set_progress_handler(lambda: int(time.monotonic() > deadline[0]), 10_000)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @event.listens_for(engine, "before_cursor_execute")
    def _arm(conn: Connection, *_args: Any) -> None:
        conn.info.setdefault(_DEADLINE, [math.inf])[0] = time.monotonic() + timeout


def explain(exc: BaseException) -> str:
    """The driver's first line about ``exc`` (not SQLAlchemy's SQL dump), secrets masked."""
    while getattr(exc, "orig", None) is None and exc.__cause__ is not None:
        exc = exc.__cause__  # pandas wraps SQLAlchemy's error in its own
    orig = getattr(exc, "orig", None) or exc
    lines = str(orig).strip().splitlines()
    return REDACTOR(f"{type(orig).__name__}: {lines[0] if lines else ''}")[:300]


def split_name(name: str) -> tuple[str | None, str]:
    """``"schema.table"`` as (schema, table); a bare name has no schema."""
    schema, _, table = name.rpartition(".")
    return schema or None, table


def reflect(conn: Connection, name: str) -> Table:
    """The table called ``name`` as the database describes it (NoSuchTableError if absent)."""
    schema, table = split_name(name)
    return Table(table, MetaData(), schema=schema, autoload_with=conn)


def lock_key(value: str) -> int:
    """A signed 64-bit advisory-lock key for ``value``."""
    return int.from_bytes(hashlib.sha256(f"icsync:{value}".encode()).digest()[:8], "big",
                          signed=True)


def as_column_value(value: Any, column: Column[Any]) -> Any:
    """``value`` fit for ``column``: text columns get text (dates ISO, Decimal exact)."""
    if value is None or isinstance(value, str) or not isinstance(column.type, String):
        return value
    return json_default(value) if not isinstance(value, int | float) else str(value)


def is_rejection(exc: DBAPIError) -> bool:
    """True when the database refused the data (not the connection or the SQL)."""
    state = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    return isinstance(exc, IntegrityError | DataError) or (
        isinstance(state, str) and state[:2] in _REJECTED_SQLSTATES)


def failed_column(exc: DBAPIError) -> str | None:
    """The column a constraint error names (psycopg diagnostics, or SQLite's message)."""
    diag = getattr(exc.orig, "diag", None)
    name = getattr(diag, "column_name", None) or getattr(diag, "constraint_name", None)
    if name:
        return str(name)
    match = re.search(r"constraint failed: ([^,\n]+)", str(exc.orig))  # SQLite: "T.col, ..."
    return match.group(1).rsplit(".", 1)[-1].strip().strip('"') if match else None


def mapped_names(sink: str, key: str, types: dict[str, TypeEngine[Any]],
                 mapping: dict[str, str]) -> dict[str, str]:
    """Canonical name -> column name for every written column; ConfigError for unknown keys."""
    for canonical in mapping:
        if canonical not in types:
            raise ConfigError(f"unknown column {canonical!r}; known: {list(types)}",
                              key=f"sinks.{sink}.{key}.{canonical}")
    return {c: mapping.get(c, c) for c in types if mapping.get(c, c) != ""}


def define_table(metadata: MetaData, name: str, types: dict[str, TypeEngine[Any]],
            names: dict[str, str], *, unique: bool) -> Table:
    """The table to create: ``id`` the key, ``transaction_id`` NOT NULL and indexed."""
    schema, table = split_name(name)
    columns = [Column(db, types[c], primary_key=c == "id", nullable=c != "transaction_id",
                      unique=unique and c == "transaction_id",
                      index=not unique and c == "transaction_id")
               for c, db in names.items()]
    return Table(table, metadata, *columns, schema=schema)
