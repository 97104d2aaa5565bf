"""The transaction ledger: one row per company and iCompleat transaction, moved by CAS.

A transaction is recorded (``seen``) BEFORE the ERP is touched, then moves
``seen -> posting -> posted -> written_back`` (or ``quarantined``) by compare-and-set, so two
pollers, a webhook and a restarted process can never both act on the same step.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update

from sync.foundation import clock
from sync.state.db import Database
from sync.state.dialect import upsert_insert
from sync.state.journal import one_of
from sync.state.models import LedgerEntry
from sync.state.rows import LEDGER_FIELDS, LEDGER_STATUSES, Fence, LedgerRow

_RETRYING = ("seen", "posting", "posted")


def _fields(fields: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(fields) - set(LEDGER_FIELDS))
    if unknown:
        raise ValueError(f"ledger fields {unknown} do not exist; use {list(LEDGER_FIELDS)}")
    if fields.get("next_attempt_at") is not None:
        clock.require_aware(fields["next_attempt_at"], "next_attempt_at")
    return fields


def _key(company_id: str, transaction_id: str) -> tuple[Any, Any]:
    return LedgerEntry.c.company_id == company_id, LedgerEntry.c.transaction_id == transaction_id


class LedgerStore:
    """Exactly-once bookkeeping of approved transactions on their way into the ERP."""

    _db: Database

    def ledger_get(self, company_id: str, transaction_id: str) -> LedgerRow | None:
        """The ledger row of one transaction, or None if it was never seen."""
        stmt = select(LedgerEntry).where(*_key(company_id, transaction_id))
        with self._db.read("reading the ledger") as conn:
            row = conn.execute(stmt).first()
        return None if row is None else LedgerRow(**row._mapping)

    def ledger_seen(self, company_id: str, transaction_id: str, tx_type: str, *,
                    fence: Fence | None = None) -> LedgerRow:
        """Record a transaction as ``seen`` unless it is already known; the row as stored.

        Safe under races: concurrent callers end up with one row and all get it back.
        """
        now = clock.utcnow()
        values = {"company_id": company_id, "transaction_id": transaction_id,
                  "tx_type": tx_type, "status": "seen", "attempts": 0,
                  "created_at": now, "updated_at": now}
        with self._db.write(f"recording transaction {transaction_id}", fence) as conn:
            stmt = upsert_insert(conn.dialect.name, LedgerEntry).values(**values)
            conn.execute(stmt.on_conflict_do_nothing(
                index_elements=["company_id", "transaction_id"]))
            row = conn.execute(select(LedgerEntry)
                               .where(*_key(company_id, transaction_id))).one()
        return LedgerRow(**row._mapping)

    def ledger_transition(self, company_id: str, transaction_id: str, *, expect: Sequence[str],
                          to: str, fence: Fence | None = None, **fields: Any) -> bool:
        """Move a row to ``to`` only if its status is in ``expect``, setting ``fields`` too.

        ``fields`` may be tx_type, journal_number, attempts, next_attempt_at and last_error.
        False (and nothing written) when the row is missing or in another status.
        """
        for status in (*expect, to):
            one_of(status, LEDGER_STATUSES, "ledger status")
        values = {**_fields(fields), "status": to, "updated_at": clock.utcnow()}
        stmt = (update(LedgerEntry).values(**values)
                .where(*_key(company_id, transaction_id), LedgerEntry.c.status.in_(list(expect))))
        with self._db.write(f"moving transaction {transaction_id} to {to}", fence) as conn:
            return conn.execute(stmt).rowcount == 1

    def ledger_rows(self, company_id: str | None = None,
                    status: Sequence[str] | None = None) -> list[LedgerRow]:
        """Ledger rows, oldest first, of one company or all, in the given statuses or any."""
        stmt = select(LedgerEntry).order_by(
            LedgerEntry.c.created_at, LedgerEntry.c.company_id, LedgerEntry.c.transaction_id)
        if company_id is not None:
            stmt = stmt.where(LedgerEntry.c.company_id == company_id)
        if status is not None:
            stmt = stmt.where(LedgerEntry.c.status.in_(list(status)))
        with self._db.read("reading the ledger") as conn:
            return [LedgerRow(**r._mapping) for r in conn.execute(stmt)]

    def ledger_due(self, company_id: str, now: datetime | None = None) -> list[LedgerRow]:
        """Rows to work on now: seen/posting/posted not waiting for a later attempt, and
        quarantined ones whose ``next_attempt_at`` (set by a retry) has come."""
        when = clock.require_aware(now, "now") if now is not None else clock.utcnow()
        waiting = LedgerEntry.c.next_attempt_at
        stmt = select(LedgerEntry).order_by(LedgerEntry.c.created_at).where(
            LedgerEntry.c.company_id == company_id,
            or_(and_(LedgerEntry.c.status.in_(_RETRYING),
                     or_(waiting.is_(None), waiting <= when)),
                and_(LedgerEntry.c.status == "quarantined", waiting <= when)))
        with self._db.read("reading due transactions") as conn:
            return [LedgerRow(**r._mapping) for r in conn.execute(stmt)]
