"""What the state store hands back: frozen value objects, never SQLAlchemy rows, and the statuses.

Callers (the engine, the daemon, the operator commands) code against these; they can be kept,
compared and passed between threads without a database session behind them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

OP_STATUSES: Final = ("intent", "done", "failed", "unknown", "settled")
OPEN_OP_STATUSES: Final = ("intent", "unknown")
QUARANTINE_STATUSES: Final = ("open", "retry", "resolved")
QUARANTINE_ORIGINS: Final = ("validation", "remote")
LEDGER_STATUSES: Final = ("seen", "posting", "posted", "written_back", "quarantined")
LEDGER_FIELDS: Final = ("tx_type", "journal_number", "attempts", "next_attempt_at", "last_error",
                        "journal_channel")


REFERENCE_JOB: Final = "reference"  # the reference sync's job (its lease: "<company>:reference")


def lease_name(company: str, job: str) -> str:
    """The lease (and lock) name of one company's job."""
    return f"{company}:{job}"


@dataclass(frozen=True)
class Fence:
    """Proof of holding a lease: writes made with it fail once ``token`` is no longer current."""

    name: str
    holder: str
    token: int


@dataclass(frozen=True)
class LeaseLook:
    """A lease seen FREE (no live holder) at some moment, with its token then (0: never taken).

    Work done after the look and before taking the lease (rows read ahead of it) overlapped
    no other holder's exactly when the fence then taken is the very next token: every holding
    bumps the token, and a holder's writes need a live lease."""

    name: str
    token: int

    def unbroken(self, fence: Fence) -> bool:
        """Whether nobody held the lease between this look and ``fence``'s taking."""
        return fence.name == self.name and fence.token == self.token + 1


@dataclass(frozen=True)
class RunRow:
    """One run of a job for a company (``outcome`` is None while it runs)."""

    id: int
    company: str
    job: str
    kind: str | None
    started_at: datetime
    finished_at: datetime | None
    outcome: str | None
    counts: Mapping[str, Any]
    error: str | None


@dataclass(frozen=True)
class OperationRow:
    """One journalled API call: intent recorded before it, outcome after it."""

    id: int
    run_id: int | None
    company: str
    kind: str
    op: str
    keys: tuple[str, ...]
    payload_digest: str
    status: str
    detail: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class QuarantineEntry:
    """A row set aside, as the engine reports it (``origin`` says who refused it)."""

    key: str
    reason: str
    message: str
    field: str | None = None
    origin: str = "validation"
    source_digest: str | None = None


@dataclass(frozen=True)
class QuarantineRow:
    """A stored quarantined row with its history and its operator status."""

    id: int
    company: str
    kind: str
    key: str
    source_digest: str | None
    reason: str
    field: str | None
    message: str
    origin: str
    first_seen: datetime
    last_seen: datetime
    status: str


@dataclass(frozen=True)
class RefreshRow:
    """A refresh in progress: how far it got and the token to continue it with."""

    company: str
    kind: str
    started_at: datetime
    last_token: str | None
    token_expires_at: datetime | None
    chunks_sent: int
    total_chunks: int
    plan_hash: str


@dataclass(frozen=True)
class LedgerRow:
    """One iCompleat transaction's way into the ERP (``seen -> posting -> posted -> ...``)."""

    company_id: str
    transaction_id: str
    tx_type: str
    status: str
    journal_number: str | None
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime
    journal_channel: str | None = None


@dataclass(frozen=True)
class CapabilityRow:
    """An operation of one tenant: supported or not, the answer that said so, and when."""

    tenant_id: str
    operation: str
    supported: bool
    status: int | None
    detail: str | None
    checked_at: datetime


@dataclass(frozen=True)
class CursorRow:
    """Where the tail pass over one company's approved transactions of one type resumes."""

    company_id: str
    tx_type: str
    page: int
    ids: tuple[str, ...]
    swept_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class LeaseRow:
    """A lease as stored; ``live`` is judged by the database's clock at the time of reading."""

    name: str
    holder: str
    token: int
    expires_at: datetime
    live: bool
