"""Capabilities learned from the live service, remembered per tenant in the state database.

An operation whose route answers 404 or 405 is recorded as unsupported (with the status, the
message and when), logged once, and avoided until ``[icompleat] reprobe_seconds`` have passed
(default a day): then the next run tries it again, so a service that gains the call is used
again, and a success records it as supported. Operations are route names, plus
:data:`JOURNAL_WRITE` for the journal-number form of ``transaction.edit``.

Fallbacks, decided by the callers: a kind whose edit-one or delete-one is unsupported is sent
by refresh (the complete set, chunked); an unsupported journal write-back leaves the journal
number to the webhook answer, and the ledger records that channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sync.foundation.clock import utcnow
from sync.foundation.errors import ApiError, IcsyncError
from sync.foundation.logs import get_logger
from sync.state.rows import CapabilityRow

if TYPE_CHECKING:
    from sync.state.store import StateStore

log = get_logger("icsync.capabilities")

JOURNAL_WRITE = "transaction.journal"
DEFAULT_REPROBE_SECONDS = 86_400.0


def reprobe_due(row: CapabilityRow, now: datetime, interval: timedelta) -> bool:
    """Pure: True when an unsupported answer is old enough to try the call again."""
    return row.checked_at + interval <= now


def usable(row: CapabilityRow | None, now: datetime, interval: timedelta) -> bool:
    """Pure: whether to call the operation now (never refused, supported, or due a re-probe)."""
    return row is None or row.supported or reprobe_due(row, now, interval)


def reference_operations(api: str) -> tuple[str, str]:
    """The edit-one and delete-one operations of a reference kind's API name."""
    return f"{api}.edit", f"{api}.delete"


class Capabilities:
    """The capabilities of one tenant, read from and written to the state store."""

    def __init__(self, store: StateStore, tenant_id: str, *,
                 reprobe_seconds: float = DEFAULT_REPROBE_SECONDS,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.store, self.tenant_id = store, tenant_id
        self.interval = timedelta(seconds=reprobe_seconds)
        self.clock = clock
        self._known: dict[str, CapabilityRow] = {}

    async def _rows(self) -> dict[str, CapabilityRow]:
        rows = await asyncio.to_thread(self.store.capabilities, self.tenant_id)
        self._known = {r.operation: r for r in rows}
        return self._known

    async def usable(self, operation: str) -> bool:
        """True unless the operation was refused less than the re-probe interval ago."""
        row = (await self._rows()).get(operation)
        ok = usable(row, self.clock(), self.interval)
        if row is not None and not row.supported and ok:
            log.info("capability_reprobe", operation=operation, refused_at=row.checked_at)
        return ok

    async def refused(self, operation: str, exc: ApiError) -> None:
        """Record that ``operation`` answered 404/405; logged once, when it was not known so."""
        before = self._known.get(operation)
        await asyncio.to_thread(self.store.record_capability, self.tenant_id, operation,
                                supported=False, status=exc.status, detail=str(exc),
                                at=self.clock())
        self._known.pop(operation, None)
        if before is None or before.supported:
            log.warning("capability_unsupported", operation=operation, status=exc.status,
                        fallback=fallback_of(operation),
                        reprobe_after_seconds=self.interval.total_seconds())
            await self._alert(operation, before=True, after=False)

    async def worked(self, operation: str) -> None:
        """Record a success of an operation that was known as unsupported (it came back)."""
        row = self._known.get(operation)
        if row is None or row.supported:
            return
        await asyncio.to_thread(self.store.record_capability, self.tenant_id, operation,
                                supported=True, at=self.clock())
        self._known.pop(operation, None)
        log.warning("capability_supported_again", operation=operation)
        await self._alert(operation, before=False, after=True)

    async def _alert(self, operation: str, *, before: bool, after: bool) -> None:
        """Tell the alerts that a route's support changed (once across instances); a failure
        to record it is logged, never raised: the run goes on with its fallback."""
        try:
            await asyncio.to_thread(self.store.note_capability_change, operation, "supported",
                                    before, after)
        except IcsyncError as exc:
            log.warning("capability_alert_not_recorded", operation=operation, error=str(exc))


def fallback_of(operation: str) -> str:
    """What icsync does instead of an unsupported operation, in words."""
    if operation == JOURNAL_WRITE:
        return "the journal number reaches iCompleat through the webhook answer"
    if operation.endswith((".edit", ".delete")) and not operation.startswith("customfield"):
        return "the kind is sent by refresh (the complete set, chunked)"
    return "none: the calls that need it fail"
