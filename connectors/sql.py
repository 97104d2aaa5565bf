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
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import CompanyRef, SourceRead
from connectors.decoding import decode_hint, suggest_encoding
from connectors.records import kind_config
from connectors.sql_engine import explain, make_engine, reflect
from connectors.sql_sink import SqlSink
from sync.foundation.config import KindSourceConfig, SqlSourceConfig
from sync.foundation.errors import ConfigError, SourceError
from sync.foundation.secrets import Secret

__all__ = ["SqlSink", "SqlSource"]

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

    def kinds(self) -> tuple[str, ...]:
        """The kinds with a query or a table."""
        return tuple(self._config.kinds)

    def read(self, kind: str, company: CompanyRef) -> SourceRead:
        """All rows of the kind's query (company bound) or table; SourceError on any failure."""
        spec = kind_config(self.name, self._config.kinds, kind)
        params = {**company.params, "company": company.name, "company_id": company.company_id}
        try:
            with self._engine.connect() as conn, _decoding(conn, spec):
                stmt = text(spec.query) if spec.query else select(reflect(conn, spec.table or ""))
                frame = pd.read_sql(stmt, conn, params=params if spec.query else None,
                                    dtype=object, coerce_float=False)
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


@contextmanager
def _decoding(conn: Connection, spec: KindSourceConfig) -> Iterator[None]:
    """On SQLite, decode this read's text with the kind's encoding (then restore the default)."""
    raw: Any = conn.connection.driver_connection
    plain = spec.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
    if conn.dialect.name != "sqlite" or (plain and spec.encoding_errors == "strict"):
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
