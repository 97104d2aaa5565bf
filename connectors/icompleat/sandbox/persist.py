"""Where the sandbox keeps its data: nowhere (memory) or a SQLite file (``--db``).

The state holds everything in memory and writes each change through to a :class:`Store`: a
table of JSON documents keyed by (scope, key). :class:`SqliteStore` commits every write at once
(WAL), so a sandbox killed at any moment restarts with every answered write in place. Secrets
(API keys, webhook tokens) are never given to a store.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from sync.foundation.errors import ConfigError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sandbox_docs (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (scope, key)
)
"""


class Store(Protocol):
    """A write-through copy of the sandbox's data, JSON documents by (scope, key)."""

    def items(self, scope: str) -> Iterator[tuple[str, Any]]:
        """Every (key, document) of ``scope``, in no particular order."""
        ...

    def get(self, scope: str, key: str) -> Any:
        """The document, or None."""
        ...

    def put(self, scope: str, key: str, doc: Any) -> None:
        """Insert or replace one document."""
        ...

    def put_many(self, scope: str, docs: Iterable[tuple[str, Any]]) -> None:
        """Insert or replace several documents at once."""
        ...

    def delete(self, scope: str, key: str) -> None:
        """Remove one document (no error when absent)."""
        ...

    def clear(self, scope: str | None = None) -> None:
        """Remove every document of ``scope``, or everything."""
        ...

    def close(self) -> None:
        """Release the file."""
        ...


class MemoryStore:
    """The default: nothing survives the process."""

    def items(self, scope: str) -> Iterator[tuple[str, Any]]:
        """Nothing is stored."""
        return iter(())

    def get(self, scope: str, key: str) -> Any:
        """Nothing is stored."""
        return None

    def put(self, scope: str, key: str, doc: Any) -> None:
        """Ignored."""

    def put_many(self, scope: str, docs: Iterable[tuple[str, Any]]) -> None:
        """Ignored."""

    def delete(self, scope: str, key: str) -> None:
        """Ignored."""

    def clear(self, scope: str | None = None) -> None:
        """Ignored."""

    def close(self) -> None:
        """Nothing to release."""


class SqliteStore:
    """Documents in one SQLite file; every write is committed before it returns."""

    def __init__(self, path: Path) -> None:
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open sandbox database {path}: {exc}", key="--db") from exc
        self._lock = threading.Lock()

    def items(self, scope: str) -> Iterator[tuple[str, Any]]:
        """Every (key, document) of ``scope``."""
        with self._lock:
            rows = self._db.execute(
                "SELECT key, doc FROM sandbox_docs WHERE scope = ?", (scope,)).fetchall()
        return ((key, json.loads(doc)) for key, doc in rows)

    def get(self, scope: str, key: str) -> Any:
        """The document, or None."""
        with self._lock:
            row = self._db.execute("SELECT doc FROM sandbox_docs WHERE scope = ? AND key = ?",
                                   (scope, key)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, scope: str, key: str, doc: Any) -> None:
        """Insert or replace one document."""
        self.put_many(scope, [(key, doc)])

    def put_many(self, scope: str, docs: Iterable[tuple[str, Any]]) -> None:
        """Insert or replace several documents in one transaction."""
        rows = [(scope, key, json.dumps(doc)) for key, doc in docs]
        with self._lock, self._db:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT OR REPLACE INTO sandbox_docs VALUES (?, ?, ?)", rows)

    def delete(self, scope: str, key: str) -> None:
        """Remove one document."""
        with self._lock:
            self._db.execute("DELETE FROM sandbox_docs WHERE scope = ? AND key = ?", (scope, key))

    def clear(self, scope: str | None = None) -> None:
        """Remove every document of ``scope``, or everything."""
        with self._lock:
            if scope is None:
                self._db.execute("DELETE FROM sandbox_docs")
            else:
                self._db.execute("DELETE FROM sandbox_docs WHERE scope = ?", (scope,))

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            self._db.close()
