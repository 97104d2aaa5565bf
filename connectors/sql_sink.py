"""Any SQLAlchemy database as the ERP sink for approved transactions, exactly once.

A header row in ``header_table`` and one row per line in ``lines_table`` (created when absent
if ``create_tables``), with the canonical columns of ``HEADER_TYPES`` and ``LINE_TYPES`` (in
:mod:`connectors.sql_engine`). To write into the ERP's own tables, ``header_columns`` /
``line_columns`` map a canonical name to the ERP's column (``""`` leaves it out): a mapped column
must exist, an unmapped canonical column is written only where the table has a column of that
name, and ``lines_table = ""`` writes no lines. Lines carry the iCompleat id
(``transaction_id``) and the header row's generated key (``header_id``), so an ERP whose line
table points at its header's own key maps ``line_columns.header_id`` (then the iCompleat id
column on the lines is optional). One post is ONE database transaction: lock,
find, supplier check, header insert, lines, journal number, header update (the header is
inserted with a NULL journal number, set before commit). The journal number is the value of
``journal_sql`` (one statement returning one value, e.g. a call of the ERP's posting procedure;
every header field is a bound parameter, plus ``:row_id``) or ``journal_prefix`` + the
header's generated key (``header_columns.id``, the primary key) padded to ``journal_digits``.

Exactly once: find-then-insert is serialised per transaction id (SQLite: ``BEGIN IMMEDIATE``;
PostgreSQL: ``pg_advisory_xact_lock`` on a hash of the id). Other dialects take no lock and rely
on a UNIQUE index on the id column (``create_tables`` makes one unless ``unique_index = false``);
there, and everywhere with ``serialise = false``, the IntegrityError of a concurrent insert is
turned into "found the other's posting".

Rejections (SinkRejected): a missing ``required_fields`` value, a supplier absent from
``required_supplier_table`` (matched ignoring case and surrounding spaces, as reference codes
are, unless ``supplier_match = "exact"``), a value longer than its column, a constraint (NOT
NULL, CHECK, foreign key, a trigger's RAISE) or data error, or an error raised by the ERP's
procedure (SQLSTATE classes 22, 23, P0). Anything else (connection, timeout, bad SQL) is
SinkError, after a rollback.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError, NoSuchTableError, SQLAlchemyError
from sqlalchemy.sql.elements import ColumnClause, TextClause

from connectors.base import CompanyRef, Posting
from connectors.icompleat.models import Transaction
from connectors.records import (
    check_required,
    describe,
    header_record,
    line_records,
    validate_required_fields,
)
from connectors.sql_engine import (
    HEADER_TYPES,
    LINE_TYPES,
    WRITE,
    as_column_value,
    define_table,
    explain,
    failed_column,
    is_rejection,
    lock_key,
    make_engine,
    mapped_names,
    reflect,
    split_name,
)
from sync.foundation.config import SqlSinkConfig
from sync.foundation.errors import ConfigError, SinkError, SinkRejected
from sync.foundation.logs import get_logger
from sync.foundation.secrets import Secret

_LOG = get_logger("connectors.sql_sink")


@dataclass(frozen=True)
class _Tables:
    """The sink's tables as the database has them, and canonical -> column names."""

    header: sa.Table
    header_names: dict[str, str]
    lines: sa.Table | None
    line_names: dict[str, str]

    def column(self, db_name: str) -> str:
        """The canonical name of a database column (itself when not mapped)."""
        names = {**self.line_names, **self.header_names}
        return next((c for c, d in names.items() if d == db_name), db_name)


class SqlSink:
    """ERP postings in any SQLAlchemy database, exactly once per iCompleat transaction id."""

    def __init__(self, name: str, config: SqlSinkConfig, *,
                 password: Secret | None = None) -> None:
        validate_required_fields(name, config.required_fields)
        self.name = name
        self._config = config
        self._header_names = mapped_names(name, "header_columns", HEADER_TYPES,
                                          config.header_columns)
        self._line_names = mapped_names(name, "line_columns", LINE_TYPES, config.line_columns)
        self._check_config()
        self._journal_stmt = self._journal_statement()
        self._engine = make_engine(config.url, password=password, timeout=config.timeout_seconds,
                                   key=f"sinks.{name}.url")
        self._ready_lock = threading.Lock()
        self._tables: _Tables | None = None

    def _check_config(self) -> None:
        key = f"sinks.{self.name}"
        for needed in ("transaction_id", "journal_number"):
            if needed not in self._header_names:
                raise ConfigError("this column cannot be left out",
                                  key=f"{key}.header_columns.{needed}")
        if not self._config.serialise and not self._config.unique_index:
            raise ConfigError("serialise = false relies on a unique index on the id column; "
                              "set unique_index = true", key=f"{key}.serialise")

    def _journal_statement(self) -> TextClause | None:
        """``journal_sql`` with typed parameters; ConfigError naming an unknown one."""
        if not self._config.journal_sql:
            return None
        stmt = sa.text(self._config.journal_sql)
        types = {**HEADER_TYPES, "row_id": sa.Integer()}
        names = set(stmt.compile().params)
        unknown = sorted(names - set(types))
        if unknown:
            raise ConfigError(f"unknown parameters {unknown}; known: {sorted(types)}",
                              key=f"sinks.{self.name}.journal_sql")
        return stmt.bindparams(*(sa.bindparam(n, type_=types[n]) for n in sorted(names)))

    def _ready(self) -> _Tables:
        """The tables, created (once, under a lock) and checked against the mapping."""
        with self._ready_lock:
            if self._tables is None:
                self._tables = self._prepare()
            return self._tables

    def _prepare(self) -> _Tables:
        cfg = self._config
        try:
            if cfg.create_tables:
                with self._write_connection() as conn, conn.begin():
                    self._lock(conn, f"ddl:{cfg.header_table}")
                    metadata = sa.MetaData()
                    define_table(metadata, cfg.header_table, HEADER_TYPES, self._header_names,
                            unique=cfg.unique_index)
                    if cfg.lines_table:
                        define_table(metadata, cfg.lines_table, LINE_TYPES, self._line_names,
                                unique=False)
                    metadata.create_all(conn, checkfirst=True)
            with self._engine.connect() as conn:
                header = self._reflected(conn, cfg.header_table, "header_table")
                lines = self._reflected(conn, cfg.lines_table, "lines_table") \
                    if cfg.lines_table else None
        except SQLAlchemyError as exc:
            raise self._failure("preparing the ERP tables", None, exc) from exc
        header_names = self._columns(header, self._header_names, "header_columns")
        line_names = ({} if lines is None
                      else self._columns(lines, self._line_names, "line_columns"))
        self._check_keys(header, header_names, line_names if lines is not None else None)
        return _Tables(header, header_names, lines, line_names)

    def _reflected(self, conn: Connection, name: str, key: str) -> sa.Table:
        try:
            return reflect(conn, name)
        except NoSuchTableError:
            raise ConfigError(f"the table {name!r} does not exist; create it or set "
                              f"create_tables = true", key=f"sinks.{self.name}.{key}") from None

    def _columns(self, table: sa.Table, names: dict[str, str], key: str) -> dict[str, str]:
        """The written columns: a mapped one must exist; an unmapped one is written if present."""
        explicit = getattr(self._config, key)
        for canonical, db in names.items():
            if canonical in explicit and db not in table.c:
                raise ConfigError(
                    f"the table {table.fullname!r} has no column {db!r}; map {canonical} to one "
                    f"of {list(table.c.keys())}, or to \"\" to leave it out",
                    key=f"sinks.{self.name}.{key}.{canonical}")
        return {c: db for c, db in names.items() if db in table.c}

    def _check_keys(self, header: sa.Table, names: dict[str, str],
                    line_names: dict[str, str] | None) -> None:
        """The id and journal columns exist; the journal has a source; lines can be linked."""
        key = f"sinks.{self.name}"
        needed = [("header_columns", c, names) for c in ("transaction_id", "journal_number")]
        if line_names is not None and "header_id" not in line_names:
            needed.append(("line_columns", "transaction_id", line_names))
        if line_names is not None and "header_id" in line_names and "id" not in names:
            raise ConfigError("lines linked by header_id need the header's generated key: map "
                              "header_columns.id to the header table's primary key",
                              key=f"{key}.line_columns.header_id")
        for where, canonical, found in needed:
            if canonical not in found:
                raise ConfigError(f"the table has no column for {canonical}; map it to one",
                                  key=f"{key}.{where}.{canonical}")
        if "id" in names and not header.c[names["id"]].primary_key:
            raise ConfigError(f"{names['id']!r} is not the primary key of {header.fullname}",
                              key=f"{key}.header_columns.id")
        if "id" not in names and not self._config.journal_sql:
            raise ConfigError("without a generated key column (header_columns.id) the journal "
                              "number must come from journal_sql", key=f"{key}.journal_sql")

    def _write_connection(self) -> Connection:
        return self._engine.connect().execution_options(**{WRITE: True})

    def _lock(self, conn: Connection, key: str) -> None:
        """Serialise writers of ``key`` until commit (SQLite: BEGIN IMMEDIATE already does)."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(key)})

    def find(self, transaction_id: str) -> Posting | None:
        """The posting for ``transaction_id`` (the earliest row if there are several)."""
        tables = self._ready()
        try:
            with self._engine.connect() as conn:
                return self._find(conn, tables, transaction_id)
        except SQLAlchemyError as exc:
            raise self._failure("looking up", transaction_id, exc) from exc

    def _find(self, conn: Connection, t: _Tables, transaction_id: str) -> Posting | None:
        h, names = t.header, t.header_names
        stmt = sa.select(h.c[names["journal_number"]]).where(
            h.c[names["transaction_id"]] == transaction_id).limit(1)
        if "id" in names:
            stmt = stmt.order_by(h.c[names["id"]])
        row = conn.execute(stmt).first()
        if row is None:
            return None
        if not row[0]:
            raise SinkError(f"sink {self.name!r}: {h.fullname} has a row for transaction "
                            f"{transaction_id} without a journal number; complete or remove it")
        return Posting(transaction_id, str(row[0]), created=False)

    def post(self, transaction: Transaction, company: CompanyRef) -> Posting:
        """Find-or-create the ERP entry for ``transaction`` in one database transaction."""
        check_required(transaction, self._config.required_fields, self.name)
        tables = self._ready()
        found = self.find(transaction.id)
        if found is not None:
            return found
        try:
            posting = self._post_once(tables, transaction, company)
        except IntegrityError as exc:  # a concurrent insert won, or a constraint refused it
            found = self.find(transaction.id)
            if found is not None:
                return found
            raise self._rejected(tables, transaction, exc) from exc
        except DBAPIError as exc:
            if is_rejection(exc):
                raise self._rejected(tables, transaction, exc) from exc
            raise self._failure("posting", transaction.id, exc) from exc
        except SQLAlchemyError as exc:
            raise self._failure("posting", transaction.id, exc) from exc
        if posting.created:
            _LOG.info("erp.posted", sink=self.name, transaction_id=transaction.id,
                      journal_number=posting.journal_number)
        return posting

    def _post_once(self, t: _Tables, tx: Transaction, company: CompanyRef) -> Posting:
        with self._write_connection() as conn, conn.begin():
            if self._config.serialise:
                self._lock(conn, tx.id)
                found = self._find(conn, t, tx.id)
                if found is not None:
                    return found
            self._check_supplier(conn, tx)
            header = {**header_record(tx, company), "posted_at": datetime.now(UTC)}
            row_id = self._insert_header(conn, t, tx, header)
            self._insert_lines(conn, t, tx, row_id)
            journal = self._journal(conn, tx, header, row_id)
            h, names = t.header, t.header_names
            where = (h.c[names["id"]] == row_id if row_id is not None
                     else h.c[names["transaction_id"]] == tx.id)
            conn.execute(sa.update(h).where(where).values({names["journal_number"]: journal}))
        return Posting(tx.id, journal, created=True)

    def _check_supplier(self, conn: Connection, tx: Transaction) -> None:
        table_name = self._config.required_supplier_table
        if not table_name:
            return
        schema, name = split_name(table_name)
        code: ColumnClause[Any] = sa.column(self._config.required_supplier_column)
        wanted: Any = sa.bindparam("supplier_code", tx.supplier_code, type_=sa.String())
        if self._config.supplier_match == "ignore_case":  # the reference side's key rule
            match = sa.func.upper(sa.func.trim(code)) == sa.func.upper(sa.func.trim(wanted))
        else:
            match = code == wanted
        stmt = sa.select(sa.literal(1)).select_from(sa.table(name, code, schema=schema)).where(
            match).limit(1)
        if tx.supplier_code is None or conn.execute(stmt).first() is None:
            raise SinkRejected(
                f"{describe(tx)}: supplier {tx.supplier_code!r} is not in the ERP "
                f"({table_name}.{self._config.required_supplier_column}); add the supplier to "
                f"the ERP, then retry", transaction_id=tx.id, reason="unknown_supplier")

    def _row(self, table: sa.Table, names: dict[str, str], record: dict[str, Any],
             tx: Transaction, where: str) -> dict[str, Any]:
        """``record`` under the table's column names; SinkRejected for a value too long."""
        row: dict[str, Any] = {}
        for canonical, db in names.items():
            if canonical not in record:
                continue
            column = table.c[db]
            value = as_column_value(record[canonical], column)
            length = getattr(column.type, "length", None)
            if isinstance(value, str) and isinstance(length, int) and len(value) > length:
                raise SinkRejected(
                    f"{describe(tx)}: {where}{canonical} has {len(value)} characters but the ERP "
                    f"column {table.fullname}.{db} holds {length}; shorten it in iCompleat or "
                    f"widen the column", transaction_id=tx.id, reason="too_long")
            row[db] = value
        return row

    def _insert_header(self, conn: Connection, t: _Tables, tx: Transaction,
                       header: dict[str, Any]) -> int | None:
        result = conn.execute(t.header.insert().values(
            self._row(t.header, t.header_names, header, tx, "")))
        key = result.inserted_primary_key
        return int(key[0]) if "id" in t.header_names and key and key[0] is not None else None

    def _insert_lines(self, conn: Connection, t: _Tables, tx: Transaction,
                      row_id: int | None) -> None:
        """The lines, each linked to its header by the iCompleat id and (where the lines table
        has a column for it, ``line_columns.header_id``) the header's generated key."""
        if t.lines is None:
            return
        rows = [self._row(t.lines, t.line_names, {**line, "header_id": row_id}, tx,
                          f"line {line['line_number']} ") for line in line_records(tx)]
        if rows:
            conn.execute(t.lines.insert(), rows)

    def _journal(self, conn: Connection, tx: Transaction, header: dict[str, Any],
                 row_id: int | None) -> str:
        if self._journal_stmt is None:
            return f"{self._config.journal_prefix}{row_id or 0:0{self._config.journal_digits}d}"
        value = conn.execute(self._journal_stmt, {**header, "row_id": row_id}).scalar()
        if value is None or not str(value).strip():
            raise SinkError(f"sink {self.name!r}: journal_sql returned no journal number for "
                            f"{describe(tx)}; it must return one row with one value "
                            f"(sinks.{self.name}.journal_sql)")
        return str(value).strip()

    def _rejected(self, t: _Tables, tx: Transaction, exc: DBAPIError) -> SinkRejected:
        column = failed_column(exc)
        field = f" (field {t.column(column)})" if column else ""
        return SinkRejected(f"{describe(tx)}: the ERP refused it{field}: {explain(exc)}; correct "
                            f"the transaction in iCompleat or the ERP's data, then retry",
                            transaction_id=tx.id, reason="erp_constraint")

    def _failure(self, doing: str, transaction_id: str | None, exc: BaseException) -> SinkError:
        target = f" transaction {transaction_id}" if transaction_id else ""
        return SinkError(
            f"sink {self.name!r}: {doing}{target} in "
            f"{self._engine.url.render_as_string(hide_password=True)} failed: {explain(exc)}. "
            f"Nothing was posted; check that the database is reachable and sinks.{self.name}")

    def close(self) -> None:
        """Close the connection pool."""
        self._engine.dispose()
