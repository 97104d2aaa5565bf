"""A read-only look at a SQLite state database through the standard library alone.

``icsync status`` and ``icsync errors list`` only read a handful of small tables, and ``icsync
sync`` only looks at its lease before it starts reading its source ahead. Opening the full
:class:`~sync.state.store.StateStore` for them costs more than everything else they do there:
SQLAlchemy takes a fifth of a second to import on a small machine. :class:`Peek` answers the
same reads (:class:`StateReader`) with the same value objects (:mod:`sync.state.rows`), in the
same order, from a SQLite file already at this icsync's schema revision (:data:`HEAD`); for
anything else (PostgreSQL, an in-memory or missing database, an older or newer schema, a file
SQLite cannot open) :meth:`Peek.open` answers None, and the caller opens the full store, which
creates, migrates or refuses the database as usual. A test reads the same database through
both and compares every answer.

This module also holds what the full store shares with it without importing SQLAlchemy: the
schema revision, SQLite's codes for a damaged file and the message that says what to do.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

from sync.foundation.errors import StateCorrupt, StateError
from sync.foundation.files import sqlite_url_file
from sync.state.rows import (
    CapabilityRow,
    CursorRow,
    LeaseLook,
    LeaseRow,
    LedgerRow,
    QuarantineRow,
    RefreshRow,
    RunRow,
)

# The newest revision in sync/state/migrations/versions (a test keeps the two equal): a
# database already there is opened without loading Alembic.
HEAD: Final = "0005"
VERSION_TABLE: Final = "icsync_schema_version"
SQLITE_CORRUPT, SQLITE_NOTADB = 11, 26
UNIX_EPOCH_JULIAN: Final = 2440587.5
# Seconds since the epoch by SQLite's clock, as sync.state.dialect.db_epoch writes it.
_DB_EPOCH = f"(julianday('now') - {UNIX_EPOCH_JULIAN}) * 86400.0"
# What to do about a database that failed an operation (the full store says the same).
OPERATIONAL_ADVICE: Final = ("check that it is reachable, writable and not locked by another "
                             "program")

Row = TypeVar("Row")


def corrupt_message(where: str, detail: str) -> str:
    """What StateCorrupt says: which file, what is wrong, and what to do."""
    return (f"state database {where} is damaged ({detail}). icsync will not run on it: stop "
            "every icsync instance, then restore the last good backup over it, or move it aside "
            "(with its -wal and -shm files) so that a new one is built by a full read-back")


def is_corruption_code(code: object) -> bool:
    """True for SQLite's (extended) result codes meaning a damaged file or not a database."""
    return isinstance(code, int) and code & 0xFF in (SQLITE_CORRUPT, SQLITE_NOTADB)


class StateReader(Protocol):
    """The reads the operator commands and the read-ahead's lease look make; :class:`Peek` and
    the full store both answer."""

    url_for_display: str

    def last_runs(self, company: str | None = None, limit: int = 20) -> list[RunRow]: ...

    def quarantined(self, company: str | None = None, kind: str | None = None,
                    status: str | None = "open") -> list[QuarantineRow]: ...

    def ledger_rows(self, company_id: str | None = None,
                    status: Sequence[str] | None = None) -> list[LedgerRow]: ...

    def open_refreshes(self, company: str | None = None) -> list[RefreshRow]: ...

    def leases(self) -> list[LeaseRow]: ...

    def look_lease(self, name: str) -> LeaseLook | None: ...

    def capabilities(self, tenant_id: str | None = None) -> list[CapabilityRow]: ...

    def poll_cursors(self) -> list[CursorRow]: ...


def utc_time(value: str | None) -> datetime | None:
    """A stored time (naive UTC text on SQLite) as an aware UTC datetime."""
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _json(value: str | None) -> Any:
    return None if value is None else json.loads(value)


def _ids(value: str | None) -> tuple[str, ...]:
    return tuple(str(i) for i in json.loads(value or "[]"))


# What each row class is read from, and how the columns that are not plain numbers or text are
# decoded (a test checks these against the tables' types in sync.state.models).
Decoders = Mapping[str, Callable[[Any], Any]]
TABLES: Final[Mapping[type, tuple[str, Decoders]]] = {
    RunRow: ("runs", {"started_at": utc_time, "finished_at": utc_time, "counts": _json}),
    QuarantineRow: ("quarantine", {"first_seen": utc_time, "last_seen": utc_time}),
    LedgerRow: ("ledger", {"next_attempt_at": utc_time, "created_at": utc_time,
                           "updated_at": utc_time}),
    RefreshRow: ("refresh_markers", {"started_at": utc_time, "token_expires_at": utc_time}),
    CapabilityRow: ("capabilities", {"supported": bool, "checked_at": utc_time}),
    CursorRow: ("poll_cursors", {"ids": _ids, "swept_at": utc_time, "updated_at": utc_time}),
}


class Peek:
    """A SQLite state database at :data:`HEAD`, read only; open it with :meth:`open`."""

    def __init__(self, conn: sqlite3.Connection, where: str) -> None:
        self._conn = conn
        self.url_for_display = where

    @classmethod
    def open(cls, url: str, *, timeout: float = 30.0) -> Peek | None:
        """A look at the SQLite file ``url`` names, or None when the full store must open it
        (see the module's docstring). Never creates, changes or migrates anything."""
        database = sqlite_url_file(url)
        if database is None or not Path(database).is_file():
            return None
        try:
            conn = sqlite3.connect(f"{Path(database).absolute().as_uri()}?mode=rw", uri=True,
                                   timeout=timeout, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error:
            return None
        try:
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            conn.execute("PRAGMA query_only=ON")
            revisions = conn.execute(f"SELECT version_num FROM {VERSION_TABLE}").fetchall()
        except sqlite3.Error:
            revisions = []
        if revisions != [(HEAD,)]:
            conn.close()
            return None
        return cls(conn, f"sqlite:///{database}")

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def __enter__(self) -> Peek:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Peek({self.url_for_display})"

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """sqlite3's errors as the full store words them (StateCorrupt for a damaged file)."""
        try:
            yield
        except sqlite3.Error as exc:
            detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if is_corruption_code(getattr(exc, "sqlite_errorcode", None)):
                raise StateCorrupt(corrupt_message(self.url_for_display, detail)) from exc
            raise StateError(f"state database {self.url_for_display}: {action} failed: "
                             f"{detail}; {OPERATIONAL_ADVICE}") from exc

    def _rows(self, row: type[Row], action: str, where: Sequence[tuple[str, Any]] = (),
              order: str = "", limit: int | None = None) -> list[Row]:
        """Rows of ``row``'s table: ``column = value`` for each pair of ``where`` (a list or
        tuple value: ``column IN (...)``), in ``order``, at most ``limit``."""
        table, decoders = TABLES[row]
        names = [f.name for f in fields(row)]  # type: ignore[arg-type]
        sql = f"SELECT {', '.join(_quoted(n) for n in names)} FROM {table}"
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in where:
            if isinstance(value, list | tuple):
                if not value:
                    return []
                clauses.append(f"{_quoted(column)} IN ({', '.join('?' * len(value))})")
                params += value
            else:
                clauses.append(f"{_quoted(column)} = ?")
                params.append(value)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        if order:
            sql += f" ORDER BY {order}"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._errors(action):
            found = self._conn.execute(sql, params).fetchall()
        steps = [(i, n, decoders[n]) for i, n in enumerate(names) if n in decoders]
        out = []
        for values in found:
            values = list(values)
            for i, name, decode in steps:
                try:
                    values[i] = decode(values[i])
                except (ValueError, TypeError) as exc:  # text the store never writes
                    raise StateCorrupt(corrupt_message(
                        self.url_for_display, f"{table}.{name} holds {str(values[i])[:40]!r}, "
                        f"which does not read back ({exc})")) from None
            out.append(row(*values))
        return out

    def last_runs(self, company: str | None = None, limit: int = 20) -> list[RunRow]:
        """The latest ``limit`` runs, newest first (of one company, or all)."""
        where = [("company", company)] if company is not None else []
        return self._rows(RunRow, "reading runs", where, "id DESC", limit)

    def quarantined(self, company: str | None = None, kind: str | None = None,
                    status: str | None = "open") -> list[QuarantineRow]:
        """Quarantined rows, filtered by company, kind and status (None: any)."""
        where = [(c, v) for c, v in (("company", company), ("kind", kind), ("status", status))
                 if v is not None]
        return self._rows(QuarantineRow, "reading quarantined rows", where, "id")

    def ledger_rows(self, company_id: str | None = None,
                    status: Sequence[str] | None = None) -> list[LedgerRow]:
        """Ledger rows, oldest first, of one company or all, in the given statuses or any."""
        where: list[tuple[str, Any]] = []
        if company_id is not None:
            where.append(("company_id", company_id))
        if status is not None:
            where.append(("status", list(status)))
        return self._rows(LedgerRow, "reading the ledger", where,
                          "created_at, company_id, transaction_id")

    def open_refreshes(self, company: str | None = None) -> list[RefreshRow]:
        """Refreshes started and not ended (all companies when ``company`` is None)."""
        where = [("company", company)] if company is not None else []
        return self._rows(RefreshRow, "reading refresh markers", where, "company, kind")

    def leases(self) -> list[LeaseRow]:
        """Every lease with its holder, token, expiry and whether it is live now (by the
        database's clock, which on SQLite is the host's)."""
        sql = (f"SELECT name, holder, token, expires_at, expires_at > {_DB_EPOCH} "
               "FROM leases ORDER BY name")
        with self._errors("reading leases"):
            found = self._conn.execute(sql).fetchall()
        return [LeaseRow(name=name, holder=holder, token=int(token),
                         expires_at=datetime.fromtimestamp(expires, UTC), live=bool(live))
                for name, holder, token, expires, live in found]

    def look_lease(self, name: str) -> LeaseLook | None:
        """Lease ``name`` with its token when no one holds it now (a lease never taken: token
        0); None while a holder's lease is live (see :func:`sync.state.leases.look`)."""
        sql = f"SELECT token, expires_at > {_DB_EPOCH} FROM leases WHERE name = ?"
        with self._errors(f"looking at lease {name!r}"):
            row = self._conn.execute(sql, (name,)).fetchone()
        if row is None:
            return LeaseLook(name, 0)
        return None if row[1] else LeaseLook(name, int(row[0]))

    def capabilities(self, tenant_id: str | None = None) -> list[CapabilityRow]:
        """Every recorded capability, of one tenant or all, by tenant and operation."""
        where = [("tenant_id", tenant_id.casefold())] if tenant_id is not None else []
        return self._rows(CapabilityRow, "reading capabilities", where, "tenant_id, operation")

    def poll_cursors(self) -> list[CursorRow]:
        """Every poll cursor, by company and type."""
        return self._rows(CursorRow, "reading poll cursors", (), "company_id, tx_type")


def _quoted(name: str) -> str:
    """A column name as SQL (``key`` is a keyword)."""
    return f'"{name}"'
