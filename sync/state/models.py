"""The state database's tables as SQLAlchemy 2.0 typed models (the schema at the head revision).

The migrations in ``sync/state/migrations/versions`` build exactly this schema step by step (a
test compares them); they never import this module, so an old revision stays as it was written.
Times are timezone-aware UTC; JSON is stored as compact UTF-8 text so that a record reads back
exactly as written on every backend. Lease expiry is seconds since the epoch on the DATABASE's
clock (see :mod:`sync.state.leases`).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
ID = BigInteger().with_variant(Integer(), "sqlite")  # SQLite autoincrements INTEGER keys only


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out (SQLite keeps them as naive UTC text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()}: pass an aware (UTC) datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def dump_json(value: Any) -> str:
    """Compact JSON text that reads back exactly: non-ASCII kept as is, except that text
    holding lone surrogates (which no database can store as UTF-8) is written escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"))
    return text


class JsonText(TypeDecorator[Any]):
    """Any JSON value stored as text (the same bytes on SQLite and PostgreSQL)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else dump_json(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else json.loads(value)


class Base(DeclarativeBase):
    """Declarative base carrying the constraint naming convention the migrations use."""

    metadata = MetaData(naming_convention=NAMING)


class RemoteRecord(Base):
    """The last known remote copy of one record, with its stable digest."""

    __tablename__ = "remote_records"
    company: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String, primary_key=True)
    key: Mapped[str] = mapped_column(String, primary_key=True)
    record: Mapped[Any] = mapped_column(JsonText, nullable=False)
    digest: Mapped[str] = mapped_column(String, nullable=False)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class Run(Base):
    """One run of one job for one company."""

    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_company_id", "company", "id"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    company: Mapped[str] = mapped_column(String, nullable=False)
    job: Mapped[str] = mapped_column(String, nullable=False)
    kind: Mapped[str | None] = mapped_column(String)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    outcome: Mapped[str | None] = mapped_column(String)
    counts: Mapped[Any] = mapped_column(JsonText, nullable=False)
    error: Mapped[str | None] = mapped_column(Text)


class Operation(Base):
    """The operations journal: intent before an API call, its outcome after."""

    __tablename__ = "operations"
    __table_args__ = (Index("ix_operations_open", "company", "kind", "status"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"))
    company: Mapped[str] = mapped_column(String, nullable=False)
    kind: Mapped[str] = mapped_column(String, nullable=False)
    op: Mapped[str] = mapped_column(String, nullable=False)
    keys: Mapped[Any] = mapped_column(JsonText, nullable=False)
    payload_digest: Mapped[str] = mapped_column(String, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False)
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class Quarantined(Base):
    """A row set aside by validation or refused by iCompleat, until fixed or resolved."""

    __tablename__ = "quarantine"
    __table_args__ = (UniqueConstraint("company", "kind", "key", "origin"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    company: Mapped[str] = mapped_column(String, nullable=False)
    kind: Mapped[str] = mapped_column(String, nullable=False)
    key: Mapped[str] = mapped_column(String, nullable=False)
    origin: Mapped[str] = mapped_column(String, nullable=False)
    source_digest: Mapped[str | None] = mapped_column(String)
    reason: Mapped[str] = mapped_column(String, nullable=False)
    field: Mapped[str | None] = mapped_column(String)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    first_seen: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    last_seen: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False)


class RefreshMarker(Base):
    """A refresh (complete set in chunks) that has started and not yet ended."""

    __tablename__ = "refresh_markers"
    company: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    last_token: Mapped[str | None] = mapped_column(Text)
    token_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    chunks_sent: Mapped[int] = mapped_column(Integer, nullable=False)
    total_chunks: Mapped[int] = mapped_column(Integer, nullable=False)
    plan_hash: Mapped[str] = mapped_column(String, nullable=False)


class AppendToken(Base):
    """The continuation token of a kind's live set, for appending without a refresh."""

    __tablename__ = "append_tokens"
    company: Mapped[str] = mapped_column(String, primary_key=True)
    kind: Mapped[str] = mapped_column(String, primary_key=True)
    token: Mapped[str] = mapped_column(Text, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class LedgerEntry(Base):
    """One iCompleat transaction on its way into the ERP; one row per company and id."""

    __tablename__ = "ledger"
    __table_args__ = (Index("ix_ledger_company_status", "company_id", "status"),)
    company_id: Mapped[str] = mapped_column(String, primary_key=True)
    transaction_id: Mapped[str] = mapped_column(String, primary_key=True)
    tx_type: Mapped[str] = mapped_column(String, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False)
    journal_number: Mapped[str | None] = mapped_column(String)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    # How iCompleat got the journal number: "api" (written back), "webhook" (the push's
    # answer), "icompleat" (it showed the number already); None until one of them did.
    journal_channel: Mapped[str | None] = mapped_column(String)


class Capability(Base):
    """What one tenant's iCompleat answered for an operation: supported, or 404/405 and when."""

    __tablename__ = "capabilities"
    tenant_id: Mapped[str] = mapped_column(String, primary_key=True)
    operation: Mapped[str] = mapped_column(String, primary_key=True)
    supported: Mapped[bool] = mapped_column(Boolean, nullable=False)
    status: Mapped[int | None] = mapped_column(Integer)
    detail: Mapped[str | None] = mapped_column(Text)
    checked_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class PollCursor(Base):
    """How far one company's approved list of one type has been read: a page and its ids."""

    __tablename__ = "poll_cursors"
    company_id: Mapped[str] = mapped_column(String, primary_key=True)
    tx_type: Mapped[str] = mapped_column(String, primary_key=True)
    page: Mapped[int] = mapped_column(Integer, nullable=False)
    ids: Mapped[str] = mapped_column(Text, nullable=False)  # JSON list of the page's ids
    swept_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)


class Lease(Base):
    """A named lease with its current holder and fencing token (expiry on the DB's clock)."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String, primary_key=True)
    holder: Mapped[str] = mapped_column(String, nullable=False)
    token: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[float] = mapped_column(Float(precision=53), nullable=False)


class AlertCondition(Base):
    """One alert condition (``guard_block:acme``...): active or clear, with what it last said.

    Instances sharing the database move a row by compare-and-set, so a start or a clear is
    queued once however many instances observe it."""

    __tablename__ = "alert_conditions"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    condition: Mapped[str] = mapped_column(String, nullable=False)
    subject: Mapped[str] = mapped_column(String, nullable=False)
    status: Mapped[str] = mapped_column(String, nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False)
    data: Mapped[Any] = mapped_column(JsonText, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    cleared_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class AlertMessage(Base):
    """An alert message to send (the outbox): claimed by one sender, retried until sent."""

    __tablename__ = "alert_outbox"
    __table_args__ = (Index("ix_alert_outbox_due", "sent_at", "due_at"),)
    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String, nullable=False)
    event: Mapped[str] = mapped_column(String, nullable=False)
    title: Mapped[str] = mapped_column(Text, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    due_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False)
    delivered: Mapped[Any] = mapped_column(JsonText, nullable=False)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String)
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
