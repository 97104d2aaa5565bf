"""Any SQLAlchemy database as a reference-data source (and, re-exported, the SQL sink).

Per kind a ``query`` (``:company`` and ``:company_id`` are BOUND parameters, never formatted in)
or a ``table`` (reflected, so the name is quoted correctly; ``schema.table`` allowed; read
whole). Values come back as the driver returns them, in object columns: text stays text
(``"0042"``). Mapping, ``defaults`` and trimming belong to normalisation, as for every source.
Text that is not UTF-8 (a SQLite file written by a Windows program) stops the read with a
ConfigError naming the column and the encoding that reads it; on SQLite the kind's ``encoding``
(``"cp1252"``) then decodes its text, and ``encoding_errors = "quarantine"`` marks undecodable
bytes with U+FFFD so only those rows are rejected (``bad_encoding``). Other databases
convert text on the server, in their client encoding.
Connections and timeouts: :mod:`connectors.sql_engine`. The sink: :mod:`connectors.sql_sink`.

Arrow-native reads: for a SQLite file or a PostgreSQL database the rows are read through the
database's ADBC driver straight into Arrow (several times faster than row by row, and a frame of
Arrow-backed columns that normalisation takes as it is). The statement is the one SQLAlchemy
compiles (same binds, same quoting). The Arrow read is used only when every column comes back as
text, integers, floating point or booleans, which hold the same values the row-by-row read
gives; anything else (dates, PostgreSQL numerics, a column whose rows disagree on their type, a
locked or unreadable database, text that is not UTF-8) is read again through SQLAlchemy,
exactly as before, so errors and quarantines keep their behaviour. Other databases, and
``arrow = false`` on the source, always read through SQLAlchemy.

Every read stays bounded by ``timeout_seconds``: PostgreSQL's ADBC connection carries a
``statement_timeout``; ADBC's SQLite driver cannot cancel a statement (``adbc_cancel`` is not
implemented), so on SQLite every Arrow read, ``query`` or ``table``, runs in a child process
that is killed at the deadline (:mod:`connectors.sqlite_child`). Never in this process: the
driver carries its own copy of the SQLite library, and two copies in one process do not see
each other's POSIX locks (closing one's file descriptor drops the other's locks, the hazard
SQLite's "How To Corrupt" page warns of). Measured here: with the ERP file in WAL mode and
also open through Python's ``sqlite3``, an in-process ADBC read returned rows older than the
last commit, and the next ``sqlite3`` connection failed with "disk I/O error". The SQLAlchemy
read, when it is used, is interrupted at the deadline by a progress handler.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote, urlencode

import pandas as pd
import pyarrow as pa
from sqlalchemy import Connection, Select, TextClause, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import CompanyRef, SourceRead
from connectors.decoding import decode_hint, suggest_encoding
from connectors.records import kind_config
from connectors.sql_ahead import arrow_statement, plain_utf8, query_params, sqlite_file
from connectors.sql_engine import explain, make_engine, reflect
from connectors.sql_sink import SqlSink
from connectors.sqlite_child import QueryTimedOut, prewarm, read_query
from sync.foundation.config import KindSourceConfig, SqlSourceConfig
from sync.foundation.errors import ConfigError, SourceError
from sync.foundation.secrets import Secret

__all__ = ["SqlSink", "SqlSource", "plain_utf8"]

# A query that cannot work whatever the database's state: SQLite's messages, and the SQLSTATEs
# of a syntax error, an unknown column, an unknown function and an ambiguous column.
_BAD_SQL = re.compile(r"syntax error|no such (column|function)|incomplete input|"
                      r"unrecognized token|ambiguous column", re.I)
_BAD_SQLSTATES = frozenset({"42601", "42703", "42883", "42702"})
# SQLite's own message for a TEXT value that is not UTF-8 (it names the column).
_NOT_UTF8 = re.compile(r"Could not decode to UTF-8 column '([^']*)' with text '(.*)'", re.S)


class SqlSource:
    """Reference data from any SQLAlchemy database, per kind a query or a table."""

    def __init__(self, name: str, config: SqlSourceConfig, *,
                 password: Secret | None = None) -> None:
        for kind, spec in config.kinds.items():
            if (spec.query is None) == (spec.table is None):
                raise ConfigError("set exactly one of query or table",
                                  key=f"sources.{name}.kinds.{kind}")
        self.name = name
        self._config = config
        self._engine = make_engine(config.url, password=password, timeout=config.timeout_seconds,
                                   key=f"sources.{name}.url")
        self._timeout = config.timeout_seconds
        self._arrow = config.arrow

    def kinds(self) -> tuple[str, ...]:
        """The kinds with a query or a table."""
        return tuple(self._config.kinds)

    def read(self, kind: str, company: CompanyRef) -> SourceRead:
        """All rows of the kind's query (company bound) or table; SourceError on any failure."""
        spec = kind_config(self.name, self._config.kinds, kind)
        params = query_params(company)
        try:
            with self._engine.connect() as conn, _decoding(conn, spec):
                stmt = text(spec.query) if spec.query else select(reflect(conn, spec.table or ""))
                # ADBC reads text as UTF-8: a kind read in another encoding (or quarantining
                # undecodable bytes) goes through SQLAlchemy with the kind's decoder.
                arrow = self._arrow and plain_utf8(spec)
                frame = arrow_read(self._engine.url, stmt, params, self._timeout) \
                    if arrow else None
                if frame is None:
                    frame = pd.read_sql(stmt, conn, params=params if spec.query else None,
                                        dtype=object, coerce_float=False)
        except QueryTimedOut as exc:
            raise SourceError(
                f"source {self.name!r}: reading {kind} for company {company.name!r} from "
                f"{self._engine.url.render_as_string(hide_password=True)} failed: the query was "
                f"{exc} (timeout_seconds); make the query in sources.{self.name}.kinds.{kind} "
                "faster (an index, a join condition) or raise timeout_seconds") from exc
        except UnicodeDecodeError as exc:
            key = f"sources.{self.name}.kinds.{kind}"
            raise ConfigError(
                f"source {self.name!r}: text read for {kind} does not decode as {spec.encoding} "
                f"({exc.object[:60]!r}); set the encoding the database was written in, or "
                f"encoding_errors = \"quarantine\" in [{key}]", key=f"{key}.encoding") from exc
        except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
            self._not_utf8(kind, exc)
            self._bad_sql(kind, spec, exc)
            what = "query" if spec.query else f"table {spec.table!r}"
            raise SourceError(
                f"source {self.name!r}: reading {kind} for company {company.name!r} from "
                f"{self._engine.url.render_as_string(hide_password=True)} failed: "
                f"{explain(exc)}. Check that the database is reachable, the credentials, and "
                f"the {what} in sources.{self.name}.kinds.{kind}") from exc
        return SourceRead(frame, complete=True)

    def _not_utf8(self, kind: str, exc: BaseException) -> None:
        """ConfigError naming the column and the encoding to set, for text that is not UTF-8."""
        found = _NOT_UTF8.search(str(exc))
        if found is None:
            return
        column, shown = found.group(1), found.group(2)
        raw = shown.encode("utf-8", "replace")
        suggestion = "cp1252" if "\ufffd" in shown else suggest_encoding(raw, "utf-8")
        key = f"sources.{self.name}.kinds.{kind}"
        raise ConfigError(
            f"source {self.name!r}: column {column!r} read for {kind} holds text that is not "
            f"UTF-8 ({shown[:60]!r}); {decode_hint(suggestion)} in [{key}] (or "
            f"encoding_errors = \"quarantine\" to set only those rows aside as bad_encoding)",
            key=f"{key}.encoding") from exc

    def _bad_sql(self, kind: str, spec: KindSourceConfig, exc: BaseException) -> None:
        """ConfigError (exit 2) when the query itself is wrong (syntax, an unknown column or
        function), whatever the database's state; a missing table stays a failed read."""
        state = getattr(getattr(exc, "orig", None), "sqlstate", None)
        if state not in _BAD_SQLSTATES and not _BAD_SQL.search(str(exc)):
            return
        setting = "query" if spec.query else "table"
        raise ConfigError(f"source {self.name!r}: the {setting} for {kind} is wrong: "
                          f"{explain(exc)}", key=f"sources.{self.name}.kinds.{kind}.{setting}"
                          ) from exc

    def close(self) -> None:
        """Close the connection pool."""
        self._engine.dispose()


def text_decoder(encoding: str, errors: str) -> Callable[[bytes], str]:
    """SQLite's text factory for a kind: its encoding, undecodable bytes per ``errors``."""
    def decode(data: bytes) -> str:
        return data.decode(encoding, errors)
    return decode


def warm(config: SqlSourceConfig) -> None:
    """Start a SQLite reader ahead of the first read when this source will use one."""
    try:
        url = make_url(config.url)
    except (SQLAlchemyError, ValueError):
        return  # reported by the read
    if config.arrow and sqlite_file(url) and any(
            plain_utf8(spec) for spec in config.kinds.values()):
        prewarm()


@contextmanager
def _decoding(conn: Connection, spec: KindSourceConfig) -> Iterator[None]:
    """On SQLite, decode this read's text with the kind's encoding (then restore the default)."""
    raw: Any = conn.connection.driver_connection
    if conn.dialect.name != "sqlite" or plain_utf8(spec):
        yield
        return
    # Quarantine: U+FFFD marks the bytes (normalisation rejects it as bad_encoding); pandas
    # cannot build a frame of lone surrogates from a query's rows.
    errors = "replace" if spec.encoding_errors == "quarantine" else "strict"
    raw.text_factory = text_decoder(spec.encoding, errors)
    try:
        yield
    finally:
        raw.text_factory = str


def _adbc_connect(url: URL, timeout: float) -> Any:
    """An ADBC connection for a PostgreSQL URL; None for anything else (SQLite is read by
    :mod:`connectors.sqlite_child`)."""
    backend = url.get_backend_name()
    try:
        if backend == "postgresql":
            import adbc_driver_postgresql.dbapi as adbc_pg

            seconds = max(1, round(timeout))
            query = {**url.query, "connect_timeout": str(seconds),
                     "options": f"-c statement_timeout={seconds * 1000}"}
            base = url.set(drivername="postgresql", query={})
            return adbc_pg.connect(base.render_as_string(hide_password=False) + "?"
                                   + urlencode(query, doseq=True, quote_via=quote))
    except Exception:  # no driver, or no connection: the SQLAlchemy read decides
        return None
    return None


def _read_here(url: URL, sql: str, positional: list[Any], timeout: float) -> pa.Table | None:
    """The rows of ``sql`` read through ADBC in this process; None on any failure."""
    conn = _adbc_connect(url, timeout)
    if conn is None:
        return None
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, parameters=positional or None)
            table: pa.Table = cur.fetch_arrow_table()
    except Exception:  # any driver failure: the SQLAlchemy read decides, and reports it
        return None
    return table


def _valid(table: pa.Table) -> bool:
    """True when every text value is valid UTF-8: SQLite hands over the bytes of text written
    in another encoding as they are, and the row-by-row read names the column."""
    try:
        table.validate(full=True)
    except pa.ArrowInvalid:
        return False
    return True


def arrow_columns(table: pa.Table) -> bool:
    """True when every column is text, integer, floating point, boolean or all missing: the
    types whose values the row-by-row read gives exactly the same."""
    types = pa.types
    for field in table.schema:
        kind = field.type
        if (field.metadata or {}).get(b"ADBC:postgresql:typname") == b"numeric":
            return False
        if not (types.is_string(kind) or types.is_large_string(kind) or types.is_integer(kind)
                or types.is_floating(kind) or types.is_boolean(kind) or types.is_null(kind)):
            return False
    return True


def arrow_read(url: URL, stmt: TextClause | Select[Any], params: dict[str, Any],
               timeout: float) -> pd.DataFrame | None:
    """The rows of ``stmt`` as a frame of Arrow-backed columns, read through ADBC; None when
    the database has no ADBC driver here or the result needs the row-by-row read (see the
    module docstring). Never raises for the database: the caller's read reports errors."""
    statement = arrow_statement(url, stmt, params)
    if statement is None:
        return None
    if sqlite_file(url):
        # A killable child reads (a query could run forever and this driver cannot cancel
        # it), and keeps the driver's own SQLite library out of this process. A read started
        # ahead (connectors.sql_ahead) is taken here.
        table = read_query(str(url.database), *statement, timeout)
    else:
        table = _read_here(url, *statement, timeout)
    if table is None or not arrow_columns(table) or not _valid(table):
        return None
    columns = [c.cast(pa.string()) if pa.types.is_null(c.type) or pa.types.is_large_string(
        c.type) else c for c in table.columns]
    table = pa.table(columns, names=table.column_names) if columns else table
    frame: pd.DataFrame = table.to_pandas(types_mapper=pd.ArrowDtype)
    return frame
