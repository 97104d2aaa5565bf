"""The statement a SQL source's Arrow read sends, and reading a SQLite source's kinds ahead.

A one-shot ``icsync sync`` spends its first second or more importing its libraries and
opening the state database before the first kind reads its rows. :func:`read_ahead` sends the
kinds' queries to the SQLite reader process (:mod:`connectors.sqlite_child`) as soon as the
configuration is loaded, so the rows are read meanwhile, on the other core; the source's own
read of the same statement then takes them (:func:`connectors.sqlite_child.read_query`). A run
that applies keeps them only if nobody held the company's lease between its look before the
reads and its own taking of it (see ``sync.cli.sync.read_ahead`` and ``sync.reference.run``).

:func:`read_ahead` imports neither SQLAlchemy nor pandas nor pyarrow, so a command can call
it before those are imported: it reads the URL and the query's ``:name`` binds as SQLAlchemy
does (:func:`qmark_statement`; a test compiles many queries both ways). The source's own read
compiles the statement with SQLAlchemy (:func:`arrow_statement`), and takes the rows read
ahead only when both give the same SQL, the same bound parameters and the same database file;
otherwise it reads again. Only a ``query`` (not a ``table``, which needs reflecting) read as
UTF-8 from a SQLite file named by a plain URL is started ahead; anything else reads as before,
when the kind runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connectors.base import CompanyRef
from connectors.sqlite_child import read_ahead as child_read_ahead
from sync.foundation.config import KindSourceConfig, SqlSourceConfig
from sync.foundation.files import sqlite_url_file

if TYPE_CHECKING:
    from sqlalchemy import Select, TextClause
    from sqlalchemy.engine import URL

# The bind syntax of SQLAlchemy's ``text()`` (``TextClause._bind_params_regex``) and the
# compiler's un-escaping of ``\:name`` (``BIND_PARAMS_ESC``).
_BIND = re.compile(r"(?<![:\w\x5c]):(\w+)(?![:\w])")
_ESCAPED = re.compile(r"\x5c(:\w*)(?![:\w])")


def plain_utf8(spec: KindSourceConfig) -> bool:
    """True when the kind's text is read as strict UTF-8 (the default)."""
    return (spec.encoding.lower().replace("_", "-") in ("utf-8", "utf8")
            and spec.encoding_errors == "strict")


def sqlite_file(url: URL) -> bool:
    """True for a SQLite database in a file named by path (not in memory, not a URI)."""
    return (url.get_backend_name() == "sqlite" and bool(url.database)
            and url.database != ":memory:" and not str(url.database).startswith("file:"))


def qmark_statement(query: str, params: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
    """``text(query)`` as SQLAlchemy's SQLite dialect compiles it with ``?`` binds, and its
    parameters in bind order (a name used twice is bound twice); None when the query names a
    parameter that is not given, or holds text SQLAlchemy's own placeholders could be taken
    for (``%(`` or ``__[POSTCOMPILE``: it is then read when the kind runs). No SQLAlchemy
    import."""
    if "%(" in query or "__[POSTCOMPILE" in query:
        return None
    names: list[str] = []

    def bind(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return "?"

    sql = _ESCAPED.sub(lambda m: m.group(1), _BIND.sub(bind, query))
    try:
        return sql, [params[name] for name in names]
    except KeyError:
        return None


def arrow_dialect(url: URL) -> Any:
    """The SQLAlchemy dialect that compiles a statement for the ADBC driver's bind style."""
    if url.get_backend_name() == "sqlite":
        from sqlalchemy.dialects import sqlite

        return sqlite.dialect(paramstyle="qmark")
    from sqlalchemy.dialects import postgresql

    return postgresql.dialect(paramstyle="numeric_dollar")  # type: ignore[no-untyped-call]


def arrow_statement(url: URL, stmt: TextClause | Select[Any],
                    params: Mapping[str, Any]) -> tuple[str, list[Any]] | None:
    """``stmt`` as the ADBC driver takes it: its SQL and its parameters in bind order; None
    when it does not compile or names a parameter that is not given."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        compiled = stmt.compile(dialect=arrow_dialect(url))
        return str(compiled), [params[name] for name in compiled.positiontup or ()]
    except (SQLAlchemyError, KeyError):
        return None


def query_params(company: CompanyRef) -> dict[str, Any]:
    """The parameters a kind's query is bound with: the company's own, ``company`` and
    ``company_id``."""
    return {**company.params, "company": company.name, "company_id": company.company_id}


def read_ahead(config: SqlSourceConfig, kinds: Sequence[str], company: CompanyRef, *,
               gate: Callable[[], bool] | None = None) -> list[str]:
    """Start reading ``kinds`` (in this order) for ``company`` in the SQLite reader process;
    the kinds started. ``gate`` (optional) is asked once some kind can be read ahead, before
    any starts: nothing starts when it says no. Never raises: whatever cannot be read ahead
    is read when its kind runs, which reports any error."""
    database = sqlite_url_file(config.url)
    if not (config.arrow and database is not None and Path(database).is_file()):
        return []
    statements = []
    for kind in kinds:
        spec = config.kinds.get(kind)
        if spec is None or spec.query is None or not plain_utf8(spec):
            continue
        statement = qmark_statement(spec.query, query_params(company))
        if statement is not None:
            statements.append((kind, statement))
    if not statements or (gate is not None and not gate()):
        return []
    return [kind for kind, statement in statements
            if child_read_ahead(database, *statement, config.timeout_seconds)]
