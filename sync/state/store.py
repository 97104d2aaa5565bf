"""The state store: icsync's memory, on SQLite (default) or PostgreSQL. Blocking by design.

One :class:`StateStore` per process; it is thread-safe (a connection pool), and the engine
calls it from the event loop with ``asyncio.to_thread``. Its methods, grouped by topic:

- remote copy, refresh markers, append tokens: :class:`sync.state.remote.RemoteStore`
- runs, operations journal, quarantine: :class:`sync.state.journal.JournalStore`
- transaction ledger: :class:`sync.state.ledger.LedgerStore`
- capabilities and poll cursors: :class:`sync.state.live.LiveStore`
- alert conditions and the outbox of alert messages: :class:`sync.state.alerts.AlertStore`
- leases (below) and the fencing rule: every method taking ``fence=`` checks, in the SAME
  database transaction as its write, that the lease still has that holder and token and has
  not expired by the database's clock, and raises :class:`~sync.foundation.errors.LeaseLost`
  (writing
  nothing) otherwise.

Every failure is a :class:`~sync.foundation.errors.StateError`; a damaged SQLite file is
:class:`~sync.foundation.errors.StateCorrupt` at :meth:`StateStore.open`, never replaced silently.
"""

from __future__ import annotations

import os
from pathlib import Path

from sync.foundation.errors import ConfigError, StateError
from sync.foundation.files import private_file
from sync.foundation.secrets import Secret
from sync.state import leases as _leases
from sync.state.alerts import AlertStore
from sync.state.db import Database, create_state_engine, sqlite_path, state_url
from sync.state.journal import JournalStore
from sync.state.ledger import LedgerStore
from sync.state.live import LiveStore
from sync.state.migrate import current_revision, ensure_schema
from sync.state.remote import RemoteStore
from sync.state.rows import (
    CapabilityRow,
    CursorRow,
    Fence,
    LeaseLook,
    LeaseRow,
    LedgerRow,
    OperationRow,
    QuarantineEntry,
    QuarantineRow,
    RefreshRow,
    RunRow,
)

__all__ = [
    "CapabilityRow", "CursorRow", "Fence", "LeaseLook", "LeaseRow", "LedgerRow", "OperationRow",
    "QuarantineEntry", "QuarantineRow", "RefreshRow", "RunRow", "StateStore",
]


def _private_sqlite(path: Path) -> None:
    """The SQLite file as a 0600 file (SQLite gives its -wal and -shm files the same mode);
    ConfigError naming state.url when its folder cannot be written (no WAL could be made)."""
    try:
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise PermissionError(13, "the folder is not writable")
        private_file(path)
    except OSError as exc:
        raise ConfigError(f"state database {path}: cannot create or open it in {path.parent} "
                          f"({exc.strerror}); icsync needs to write that folder (the database "
                          "and its -wal and -shm files): fix its permissions or point state.url "
                          "elsewhere", key="state.url") from None


class StateStore(RemoteStore, JournalStore, LedgerStore, LiveStore, AlertStore):
    """icsync's state database; open it with :meth:`open`, close it with :meth:`close`."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.url_for_display = db.where

    @classmethod
    def open(cls, url: str, *, password: Secret | None = None, migrate: bool = True,
             timeout: float = 30.0, check: bool = True) -> StateStore:
        """Open (creating if new) the database at ``url``, check it, migrate it to the head.

        ``password`` replaces any password in ``url``. ``timeout`` bounds connecting, waiting
        for a lock and each statement. StateCorrupt when a SQLite file fails its integrity
        check or is not a database; StateError when the schema is not at the head and
        ``migrate`` is False, or was written by a newer icsync. ``check=False`` skips the
        integrity check of a SQLite file (it reads the whole file: half a second for a million
        records), for commands that only read; a damaged file still fails their queries.
        """
        parsed = state_url(url, password)
        path = sqlite_path(parsed)
        if path is not None and not path.parent.is_dir():
            raise StateError(f"state database {path}: directory {path.parent} does not exist; "
                             "create it or point state.url elsewhere")
        if path is not None:
            _private_sqlite(path)
        db = Database(create_state_engine(parsed, timeout=timeout), parsed)
        try:
            db.check_integrity(quick_check=check)
            ensure_schema(db, migrate=migrate)
        except BaseException:
            db.dispose()
            raise
        return cls(db)

    def close(self) -> None:
        """Close every connection (the store is unusable afterwards)."""
        self._db.dispose()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StateStore({self.url_for_display})"

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._db.dialect

    def ping(self) -> None:
        """A trivial query, for readiness checks; StateError when unreachable."""
        self._db.ping()

    def schema_revision(self) -> str | None:
        """The schema revision the database is at."""
        with self._db.read("reading the schema revision") as conn:
            return current_revision(conn)

    def acquire_lease(self, name: str, holder: str, ttl_seconds: float) -> Fence | None:
        """Take lease ``name`` if free, expired or already ``holder``'s, with a new token.

        None when another holder's lease is live. The returned fence guards later writes.
        """
        with self._db.write(f"acquiring lease {name!r}") as conn:
            return _leases.acquire(conn, name, holder, ttl_seconds)

    def renew_lease(self, fence: Fence, ttl_seconds: float) -> bool:
        """Extend a live lease ``fence`` still holds by ``ttl_seconds`` from now (DB clock).

        False when it expired or was taken over: the caller must stop and re-acquire.
        """
        with self._db.write(f"renewing lease {fence.name!r}") as conn:
            return _leases.renew(conn, fence, ttl_seconds)

    def release_lease(self, fence: Fence) -> None:
        """Give lease ``fence`` up now, if it still holds it (otherwise nothing happens)."""
        with self._db.write(f"releasing lease {fence.name!r}") as conn:
            _leases.release(conn, fence)

    def look_lease(self, name: str) -> LeaseLook | None:
        """Lease ``name`` as it is now if no one holds it (see :class:`LeaseLook`); None
        while another holder's lease is live."""
        with self._db.read(f"looking at lease {name!r}") as conn:
            return _leases.look(conn, name)

    def leases(self) -> list[LeaseRow]:
        """Every lease with its holder, token, expiry and whether it is live now."""
        with self._db.read("reading leases") as conn:
            return _leases.all_leases(conn)
