"""Any SQLAlchemy database as a reference-data source (and, re-exported, the SQL sink).

Per kind a ``query`` (``:company`` and ``:company_id`` are BOUND parameters, never formatted in)
or a ``table`` (reflected, so the name is quoted correctly; ``schema.table`` allowed; read
whole). Values come back as the driver returns them, in object columns: text stays text
(``"0042"``). Mapping, ``defaults`` and trimming belong to normalisation, as for every source.
Connections and timeouts: :mod:`connectors.sql_engine`. The sink: :mod:`connectors.sql_sink`.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from connectors.base import CompanyRef, SourceRead
from connectors.records import kind_config
from connectors.sql_engine import explain, make_engine, reflect
from connectors.sql_sink import SqlSink
from sync.foundation.config import SqlSourceConfig
from sync.foundation.errors import ConfigError, SourceError
from sync.foundation.secrets import Secret

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
