"""Any SQLAlchemy database as a reference-data source (and, re-exported, the SQL sink).

Per kind a ``query`` (``:company`` and ``:company_id`` are BOUND parameters, never formatted in)
or a ``table`` (reflected, so the name is quoted correctly; ``schema.table`` allowed; read
whole). Values come back as the driver returns them, in object columns: text stays text
(``"0042"``). Mapping, ``defaults`` and trimming belong to normalisation, as for every source.
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
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

import pandas as pd
import pyarrow as pa
from sqlalchemy import Select, TextClause, select, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import CompanyRef, SourceRead
from connectors.memory import kind_config
from connectors.sql_engine import explain, make_engine, reflect
from connectors.sql_sink import SqlSink
from sync.config import SqlSourceConfig
from sync.errors import ConfigError, SourceError
from sync.secrets import Secret

__all__ = ["SqlSink", "SqlSource"]


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
        params = {"company": company.name, "company_id": company.company_id}
        try:
            with self._engine.connect() as conn:
                stmt = text(spec.query) if spec.query else select(reflect(conn, spec.table or ""))
                frame = arrow_read(self._engine.url, stmt, params, self._timeout) \
                    if self._arrow else None
                if frame is None:
                    frame = pd.read_sql(stmt, conn, params=params if spec.query else None,
                                        dtype=object, coerce_float=False)
        except (SQLAlchemyError, pd.errors.DatabaseError) as exc:
            what = "query" if spec.query else f"table {spec.table!r}"
            raise SourceError(
                f"source {self.name!r}: reading {kind} for company {company.name!r} from "
                f"{self._engine.url.render_as_string(hide_password=True)} failed: "
                f"{explain(exc)}. Check that the database is reachable, the credentials, and "
                f"the {what} in sources.{self.name}.kinds.{kind}") from exc
        return SourceRead(frame, complete=True)

    def close(self) -> None:
        """Close the connection pool."""
        self._engine.dispose()


def _adbc_connect(url: URL, timeout: float) -> Any:
    """An ADBC connection for a SQLite file or a PostgreSQL URL; None for anything else."""
    backend = url.get_backend_name()
    try:
        if backend == "sqlite" and url.database and url.database != ":memory:" \
                and not url.database.startswith("file:"):
            import adbc_driver_sqlite.dbapi as adbc_sqlite

            return adbc_sqlite.connect(url.database)
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


def _dialect(url: URL) -> Any:
    """The SQLAlchemy dialect that compiles a statement for the ADBC driver's bind style."""
    if url.get_backend_name() == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.dialect(paramstyle="qmark")
    from sqlalchemy.dialects import postgresql

    return postgresql.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]


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
    try:
        compiled = stmt.compile(dialect=_dialect(url))
        positional = [params[name] for name in compiled.positiontup or ()]
    except (SQLAlchemyError, KeyError):
        return None
    conn = _adbc_connect(url, timeout)
    if conn is None:
        return None
    try:
        with conn, conn.cursor() as cur:
            cur.execute(str(compiled), parameters=positional or None)
            table = cur.fetch_arrow_table()
    except Exception:  # any driver failure: the SQLAlchemy read decides, and reports it
        return None
    if not arrow_columns(table):
        return None
    columns = [c.cast(pa.string()) if pa.types.is_null(c.type) or pa.types.is_large_string(
        c.type) else c for c in table.columns]
    table = pa.table(columns, names=table.column_names) if columns else table
    frame: pd.DataFrame = table.to_pandas(types_mapper=pd.ArrowDtype)
    return frame
