"""In-memory source and sink: for tests and the demo, with the same contract as the real ones.

The shared helpers of every connector live in :mod:`connectors.records`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from connectors.base import CompanyRef, Posting, SourceRead
from connectors.icompleat.models import Transaction
from connectors.records import (
    check_required,
    describe,
    frame_from_records,
    header_record,
    line_records,
    unconfigured,
    validate_required_fields,
)
from sync.foundation.config import MemorySourceConfig
from sync.foundation.entities import get_kind
from sync.foundation.errors import ConfigError, SinkError, SinkRejected, SourceError


class MemorySource:
    """Reference rows held in Python; mutable, with switches that simulate failures.

    Rows set for a company (by name) win over rows set for every company. A kind with rows for
    some company but none for this one reads as empty; a kind never set is not configured.
    """

    def __init__(self, name: str = "memory",
                 rows: Mapping[str, Sequence[Mapping[str, Any]]] | None = None) -> None:
        self.name = name
        self._lock = threading.Lock()
        self._rows: dict[str, dict[str | None, list[dict[str, Any]]]] = {}
        self._fail: dict[str, list[str]] = {}
        self._partial: set[str] = set()
        self.reads: list[tuple[str, str]] = []
        for kind, kind_rows in (rows or {}).items():
            self.set_rows(kind, kind_rows)

    @classmethod
    def from_config(cls, name: str, config: MemorySourceConfig) -> MemorySource:
        """A memory source with the configured rows (and empty kinds for bare kind tables)."""
        source = cls(name)
        for kind, rows in config.rows.items():
            try:
                source.set_rows(kind, rows)
            except ValueError as exc:
                raise ConfigError(str(exc), key=f"sources.{name}.rows.{kind}") from None
        for kind in config.kinds:
            source._rows.setdefault(kind, {None: []})
        return source

    def set_rows(self, kind: str, rows: Sequence[Mapping[str, Any]], *,
                 company: str | None = None) -> None:
        """Replace the rows of ``kind`` (for one company name, or for all when None)."""
        get_kind(kind)
        with self._lock:
            self._rows.setdefault(kind, {})[company] = [dict(r) for r in rows]

    def fail_next(self, kind: str, message: str = "simulated read failure") -> None:
        """Make the next read of ``kind`` raise SourceError."""
        with self._lock:
            self._fail.setdefault(kind, []).append(message)

    def partial(self, kind: str, partial: bool = True) -> None:
        """Make reads of ``kind`` report ``complete=False`` (until called with False)."""
        with self._lock:
            (self._partial.add if partial else self._partial.discard)(kind)

    def kinds(self) -> tuple[str, ...]:
        """The kinds that have rows (possibly none) in this source."""
        with self._lock:
            return tuple(self._rows)

    def read(self, kind: str, company: CompanyRef) -> SourceRead:
        """A copy of the rows of ``kind`` for ``company``."""
        with self._lock:
            by_company = self._rows.get(kind)
            if by_company is None:
                raise unconfigured(self.name, kind)
            self.reads.append((kind, company.name))
            if self._fail.get(kind):
                raise SourceError(f"source {self.name!r}: reading {kind} for company "
                                  f"{company.name!r} failed: {self._fail[kind].pop(0)}")
            rows = by_company.get(company.name, by_company.get(None, []))
            complete = kind not in self._partial
        detail = "" if complete else "the memory source was told to report a partial read"
        return SourceRead(frame_from_records(rows), complete=complete, detail=detail)

    def close(self) -> None:
        """Nothing to release."""


@dataclass(frozen=True)
class MemoryEntry:
    """One ERP entry made by :class:`MemorySink`."""

    transaction_id: str
    journal_number: str
    company: CompanyRef
    header: Mapping[str, Any]
    lines: tuple[Mapping[str, Any], ...]
    posted_at: datetime


Outcome = Literal["created", "found", "rejected", "failed"]


class MemorySink:
    """An in-memory ERP: thread-safe, recording every call so checkers can count entries.

    ``entries`` lists every entry ever made in order (a duplicate would show twice); ``calls``
    lists ``(transaction_id, outcome)`` for every ``post``. Journal numbers are
    ``journal_prefix`` plus a zero-padded sequence, like a database key.
    """

    def __init__(self, name: str = "memory", *, journal_prefix: str = "M",
                 required_fields: Sequence[str] = ()) -> None:
        validate_required_fields(name, required_fields)
        self.name = name
        self.journal_prefix = journal_prefix
        self.required_fields = tuple(required_fields)
        self.entries: list[MemoryEntry] = []
        self.calls: list[tuple[str, Outcome]] = []
        self._lock = threading.Lock()
        self._by_id: dict[str, MemoryEntry] = {}
        self._rejects: dict[str, str] = {}
        self._failures: list[bool] = []

    def reject(self, transaction_id: str, reason: str = "rejected") -> None:
        """Make every post of ``transaction_id`` raise SinkRejected with ``reason``."""
        with self._lock:
            self._rejects[transaction_id] = reason

    def fail_next(self, *, after_commit: bool = False) -> None:
        """Make the next post raise SinkError, before making the entry or after it."""
        with self._lock:
            self._failures.append(after_commit)

    def entry_counts(self) -> Counter[str]:
        """How many entries exist per transaction id (a checker expects 1 each)."""
        with self._lock:
            return Counter(e.transaction_id for e in self.entries)

    def find(self, transaction_id: str) -> Posting | None:
        """The entry made for ``transaction_id``, if any."""
        with self._lock:
            entry = self._by_id.get(transaction_id)
        return Posting(transaction_id, entry.journal_number, False) if entry else None

    def post(self, transaction: Transaction, company: CompanyRef) -> Posting:
        """Find-or-create the entry for ``transaction`` (atomic under the sink's lock)."""
        with self._lock:
            try:
                posting = self._post_locked(transaction, company)
            except SinkRejected:
                self.calls.append((transaction.id, "rejected"))
                raise
            except SinkError:
                self.calls.append((transaction.id, "failed"))
                raise
            self.calls.append((transaction.id, "created" if posting.created else "found"))
            return posting

    def _post_locked(self, tx: Transaction, company: CompanyRef) -> Posting:
        after_commit = self._failures.pop(0) if self._failures else None
        if after_commit is False:
            raise SinkError(f"sink {self.name!r}: simulated outage posting {describe(tx)}")
        if tx.id in self._by_id:
            return Posting(tx.id, self._by_id[tx.id].journal_number, False)
        if tx.id in self._rejects:
            raise SinkRejected(f"{describe(tx)}: the ERP refused it: {self._rejects[tx.id]}",
                               transaction_id=tx.id, reason=self._rejects[tx.id])
        check_required(tx, self.required_fields, self.name)
        journal = f"{self.journal_prefix}{len(self.entries) + 1:08d}"
        entry = MemoryEntry(tx.id, journal, company, header_record(tx, company),
                            tuple(line_records(tx)), datetime.now(UTC))
        self.entries.append(entry)
        self._by_id[tx.id] = entry
        if after_commit:
            raise SinkError(f"sink {self.name!r}: simulated failure after committing "
                            f"{describe(tx)}; find() returns the entry")
        return Posting(tx.id, journal, True)

    def close(self) -> None:
        """Nothing to release."""
