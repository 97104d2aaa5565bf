"""What icsync learns about the live service: capabilities per tenant and poll cursors.

A capability row says whether one operation (a route name, or ``transaction.journal``) answered
404/405 for a tenant, with the status, the message and when; a cursor row says where the tail
pass over one company's approved transactions of one type resumes (a page and the ids on it)
and when the last full sweep finished.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from sync.foundation.clock import require_aware as aware
from sync.foundation.clock import utcnow
from sync.state.db import Database
from sync.state.dialect import upsert_insert
from sync.state.models import Capability, PollCursor
from sync.state.rows import CapabilityRow, CursorRow


def _cursor(row: Any) -> CursorRow:
    values = dict(row._mapping)
    ids = json.loads(values.pop("ids") or "[]")
    return CursorRow(ids=tuple(str(i) for i in ids), **values)


class LiveStore:
    """Capabilities and poll cursors (no fencing: both are hints that any runner may refresh)."""

    _db: Database

    def capabilities(self, tenant_id: str | None = None) -> list[CapabilityRow]:
        """Every recorded capability, of one tenant or all, by tenant and operation."""
        stmt = select(Capability).order_by(Capability.c.tenant_id, Capability.c.operation)
        if tenant_id is not None:
            stmt = stmt.where(Capability.c.tenant_id == tenant_id.casefold())
        with self._db.read("reading capabilities") as conn:
            return [CapabilityRow(**r._mapping) for r in conn.execute(stmt)]

    def record_capability(self, tenant_id: str, operation: str, *, supported: bool,
                          status: int | None = None, detail: str | None = None,
                          at: datetime | None = None) -> None:
        """Store what ``operation`` answered for ``tenant_id`` (replacing the earlier answer)."""
        values = {"tenant_id": tenant_id.casefold(), "operation": operation,
                  "supported": supported, "status": status,
                  "detail": None if detail is None else detail[:500],
                  "checked_at": aware(at, "at") if at is not None else utcnow()}
        with self._db.write(f"recording capability {operation}") as conn:
            stmt = upsert_insert(conn.dialect.name, Capability).values(**values)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=["tenant_id", "operation"],
                set_={k: v for k, v in values.items() if k not in ("tenant_id", "operation")}))

    def poll_cursor(self, company_id: str, tx_type: str) -> CursorRow | None:
        """The tail cursor of one company and type, or None before the first pass."""
        stmt = select(PollCursor).where(PollCursor.c.company_id == company_id,
                                                   PollCursor.c.tx_type == tx_type)
        with self._db.read("reading a poll cursor") as conn:
            row = conn.execute(stmt).first()
        return None if row is None else _cursor(row)

    def poll_cursors(self) -> list[CursorRow]:
        """Every poll cursor, by company and type."""
        stmt = select(PollCursor).order_by(PollCursor.c.company_id, PollCursor.c.tx_type)
        with self._db.read("reading poll cursors") as conn:
            return [_cursor(r) for r in conn.execute(stmt)]

    def save_poll_cursor(self, company_id: str, tx_type: str, page: int, ids: Sequence[str], *,
                         swept_at: datetime | None = None) -> None:
        """Remember the last page read and its ids; ``swept_at`` when a full sweep ended."""
        values: dict[str, Any] = {"company_id": company_id, "tx_type": tx_type, "page": page,
                                  "ids": json.dumps(list(ids)), "updated_at": utcnow()}
        changes = {k: v for k, v in values.items() if k not in ("company_id", "tx_type")}
        if swept_at is not None:
            values["swept_at"] = changes["swept_at"] = aware(swept_at, "swept_at")
        with self._db.write(f"saving the poll cursor of {company_id}/{tx_type}") as conn:
            stmt = upsert_insert(conn.dialect.name, PollCursor).values(**values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["company_id", "tx_type"],
                                                    set_=changes))
