"""What happened: runs with their counts, the operations journal, and quarantined rows."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, insert, select, update

from sync.foundation import clock
from sync.state.db import Database
from sync.state.dialect import batched, upsert_insert
from sync.state.models import Operation, Quarantined, Run
from sync.state.rows import (
    OP_STATUSES,
    OPEN_OP_STATUSES,
    QUARANTINE_ORIGINS,
    QUARANTINE_STATUSES,
    Fence,
    OperationRow,
    QuarantineEntry,
    QuarantineRow,
    RunRow,
)


def one_of(value: str, allowed: Sequence[str], name: str) -> str:
    """``value`` if it is in ``allowed``; ValueError listing the allowed values otherwise."""
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {list(allowed)}")
    return value


def _operation(row: Row[Any]) -> OperationRow:
    values = dict(row._mapping)
    values["keys"] = tuple(values["keys"])
    return OperationRow(**values)


def _quarantine_values(company: str, kind: str, entry: QuarantineEntry) -> dict[str, Any]:
    one_of(entry.origin, QUARANTINE_ORIGINS, "quarantine origin")
    now = clock.utcnow()
    return {"company": company, "kind": kind, "key": entry.key, "origin": entry.origin,
            "source_digest": entry.source_digest, "reason": entry.reason, "field": entry.field,
            "message": entry.message, "first_seen": now, "last_seen": now, "status": "open"}


class JournalStore:
    """Runs, the operations journal (intent before a call, outcome after) and quarantine."""

    _db: Database

    def start_run(self, company: str, job: str, kind: str | None = None, *,
                  fence: Fence | None = None, holder: str | None = None) -> int:
        """Record that a run started; returns its id. ``holder`` (the instance running it) is
        in the run's counts from the start, so a run that never finishes (its instance
        killed) still says whose it was; the counts written at the end replace them."""
        values: dict[str, Any] = {"company": company, "job": job, "kind": kind,
                                  "started_at": clock.utcnow(),
                                  "counts": {"holder": holder} if holder else {}}
        with self._db.write(f"starting a {company}/{job} run", fence) as conn:
            return int(conn.execute(insert(Run).values(**values)
                                    .returning(Run.c.id)).scalar_one())

    def finish_run(self, run_id: int, outcome: str, counts: Mapping[str, Any],
                   error: str | None = None, *, fence: Fence | None = None) -> None:
        """Record how run ``run_id`` ended, with its counts and error text."""
        values = {"finished_at": clock.utcnow(), "outcome": outcome, "counts": dict(counts),
                  "error": error}
        with self._db.write(f"finishing run {run_id}", fence) as conn:
            if conn.execute(update(Run).where(Run.c.id == run_id).values(**values)).rowcount != 1:
                raise ValueError(f"no run {run_id} to finish")

    def last_runs(self, company: str | None = None, limit: int = 20) -> list[RunRow]:
        """The latest ``limit`` runs, newest first (of one company, or all)."""
        stmt = select(Run).order_by(Run.c.id.desc()).limit(limit)
        if company is not None:
            stmt = stmt.where(Run.c.company == company)
        with self._db.read("reading runs") as conn:
            return [RunRow(**r._mapping) for r in conn.execute(stmt)]

    def runs_since(self, company: str, job: str, since: datetime,
                   limit: int = 5000) -> list[RunRow]:
        """The runs of one company's job started at or after ``since``, oldest first."""
        stmt = (select(Run).where(Run.c.company == company, Run.c.job == job,
                                            Run.c.started_at >= since)
                .order_by(Run.c.id.desc()).limit(limit))
        with self._db.read("reading run history") as conn:
            return [RunRow(**r._mapping) for r in conn.execute(stmt)][::-1]

    def record_intent(self, run_id: int | None, company: str, kind: str, op: str,
                      keys: Sequence[str], payload_digest: str, *,
                      fence: Fence | None = None) -> int:
        """Journal a call about to be made; returns the operation id for its outcome."""
        now = clock.utcnow()
        values = {"run_id": run_id, "company": company, "kind": kind, "op": op,
                  "keys": list(keys), "payload_digest": payload_digest, "status": "intent",
                  "created_at": now, "updated_at": now}
        with self._db.write(f"journalling a {company}/{kind} {op}", fence) as conn:
            return int(conn.execute(insert(Operation).values(**values)
                                    .returning(Operation.c.id)).scalar_one())

    def record_outcome(self, op_id: int, status: str, detail: str | None = None, *,
                       fence: Fence | None = None) -> None:
        """Journal how operation ``op_id`` ended: done, failed, unknown or settled."""
        one_of(status, OP_STATUSES[1:], "operation status")
        values = {"status": status, "detail": detail, "updated_at": clock.utcnow()}
        with self._db.write(f"journalling the outcome of operation {op_id}", fence) as conn:
            stmt = update(Operation).where(Operation.c.id == op_id).values(**values)
            if conn.execute(stmt).rowcount != 1:
                raise ValueError(f"no operation {op_id} in the journal")

    def open_operations(self, company: str, kind: str | None = None) -> list[OperationRow]:
        """Operations still ``intent`` or ``unknown``: each must be settled by a read."""
        stmt = (select(Operation).order_by(Operation.c.id)
                .where(Operation.c.company == company, Operation.c.status.in_(OPEN_OP_STATUSES)))
        if kind is not None:
            stmt = stmt.where(Operation.c.kind == kind)
        with self._db.read("reading open operations") as conn:
            return [_operation(r) for r in conn.execute(stmt)]

    def quarantine(self, company: str, kind: str, rows: Iterable[QuarantineEntry], *,
                   fence: Fence | None = None) -> None:
        """Set rows aside (insert, or refresh reason and last_seen and reopen, per origin)."""
        values = [_quarantine_values(company, kind, entry) for entry in rows]
        if not values:
            return
        with self._db.write(f"quarantining {company}/{kind} rows", fence) as conn:
            stmt = upsert_insert(conn.dialect.name, Quarantined)
            kept = ("source_digest", "reason", "field", "message", "last_seen", "status")
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["company", "kind", "key", "origin"],
                set_={c: stmt.excluded[c] for c in kept}), values)

    def quarantined(self, company: str | None = None, kind: str | None = None,
                    status: str | None = "open") -> list[QuarantineRow]:
        """Quarantined rows, filtered by company, kind and status (None: any)."""
        stmt = select(Quarantined).order_by(Quarantined.c.id)
        for column, value in ((Quarantined.c.company, company), (Quarantined.c.kind, kind),
                              (Quarantined.c.status, status)):
            if value is not None:
                stmt = stmt.where(column == value)
        with self._db.read("reading quarantined rows") as conn:
            return [QuarantineRow(**r._mapping) for r in conn.execute(stmt)]

    def clear_quarantine(self, company: str, kind: str, keys: Iterable[str], *,
                         origin: str | None = None, fence: Fence | None = None) -> None:
        """Remove the quarantined rows of these keys (of one origin, or all)."""
        stmt = delete(Quarantined).where(Quarantined.c.company == company,
                                         Quarantined.c.kind == kind)
        if origin is not None:
            stmt = stmt.where(Quarantined.c.origin == one_of(origin, QUARANTINE_ORIGINS, "origin"))
        with self._db.write(f"clearing {company}/{kind} quarantined rows", fence) as conn:
            for batch in batched(keys):
                conn.execute(stmt.where(Quarantined.c.key.in_(batch)))

    def set_quarantine_status(self, ids: Sequence[int], status: str) -> int:
        """Set the operator status (open, retry, resolved) of rows by id; how many changed."""
        one_of(status, QUARANTINE_STATUSES, "quarantine status")
        stmt = update(Quarantined).where(Quarantined.c.id.in_(list(ids))).values(status=status)
        with self._db.write("setting quarantine status") as conn:
            return int(conn.execute(stmt).rowcount)
