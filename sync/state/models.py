"""The state database's tables as SQLAlchemy Core tables (the schema at the head revision).

Core, not the ORM: the store reads and writes rows with Core statements only, and a command
such as ``icsync status`` would otherwise spend a sixth of its start importing the ORM.

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
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

from sync.foundation.errors import StateCorrupt
from sync.state.peek import corrupt_message

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
        if value is None:
            return None
        try:
            return json.loads(value)
        except ValueError as exc:  # text the store never writes: the file was changed
            raise StateCorrupt(corrupt_message(
                "in use", f"a stored JSON value {str(value)[:40]!r} does not read back "
                f"({exc})")) from None


metadata = MetaData(naming_convention=NAMING)
"""The tables, with the constraint naming convention the migrations use."""

# The last known remote copy of one record, with its stable digest.
RemoteRecord = Table(
    "remote_records", metadata,
    Column("company", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("key", String, primary_key=True),
    Column("record", JsonText, nullable=False),
    Column("digest", String, nullable=False),
    Column("synced_at", UtcDateTime, nullable=False),
)

# The values a per-value check (IBAN, BIC, VAT: ``name``) found good in a kind's last run,
# as an Arrow IPC stream of one text column, with the rules (library versions) that judged
# them: the next run calls the libraries only for the values not among them.
CheckedValues = Table(
    "checked_values", metadata,
    Column("company", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("name", String, primary_key=True),
    Column("rules", String, nullable=False),
    Column("good", LargeBinary, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

# One run of one job for one company.
Run = Table(
    "runs", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("company", String, nullable=False),
    Column("job", String, nullable=False),
    Column("kind", String),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime),
    Column("outcome", String),
    Column("counts", JsonText, nullable=False),
    Column("error", Text),
    Index("ix_runs_company_id", "company", "id"),
)

# The operations journal: intent before an API call, its outcome after.
Operation = Table(
    "operations", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("run_id", ForeignKey("runs.id", ondelete="SET NULL")),
    Column("company", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("op", String, nullable=False),
    Column("keys", JsonText, nullable=False),
    Column("payload_digest", String, nullable=False),
    Column("status", String, nullable=False),
    Column("detail", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_operations_open", "company", "kind", "status"),
)

# A row set aside by validation or refused by iCompleat, until fixed or resolved.
Quarantined = Table(
    "quarantine", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("company", String, nullable=False),
    Column("kind", String, nullable=False),
    Column("key", String, nullable=False),
    Column("origin", String, nullable=False),
    Column("source_digest", String),
    Column("reason", String, nullable=False),
    Column("field", String),
    Column("message", Text, nullable=False),
    Column("first_seen", UtcDateTime, nullable=False),
    Column("last_seen", UtcDateTime, nullable=False),
    Column("status", String, nullable=False),
    UniqueConstraint("company", "kind", "key", "origin"),
)

# A refresh (complete set in chunks) that has started and not yet ended.
RefreshMarker = Table(
    "refresh_markers", metadata,
    Column("company", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("started_at", UtcDateTime, nullable=False),
    Column("last_token", Text),
    Column("token_expires_at", UtcDateTime),
    Column("chunks_sent", Integer, nullable=False),
    Column("total_chunks", Integer, nullable=False),
    Column("plan_hash", String, nullable=False),
)

# The continuation token of a kind's live set, for appending without a refresh.
AppendToken = Table(
    "append_tokens", metadata,
    Column("company", String, primary_key=True),
    Column("kind", String, primary_key=True),
    Column("token", Text, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
)

# One iCompleat transaction on its way into the ERP; one row per company and id.
LedgerEntry = Table(
    "ledger", metadata,
    Column("company_id", String, primary_key=True),
    Column("transaction_id", String, primary_key=True),
    Column("tx_type", String, nullable=False),
    Column("status", String, nullable=False),
    Column("journal_number", String),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # How iCompleat got the journal number: "api" (written back), "webhook" (the push's
    # answer), "icompleat" (it showed the number already); None until one of them did.
    Column("journal_channel", String),
    Index("ix_ledger_company_status", "company_id", "status"),
)

# What one tenant's iCompleat answered for an operation: supported, or 404/405 and when.
Capability = Table(
    "capabilities", metadata,
    Column("tenant_id", String, primary_key=True),
    Column("operation", String, primary_key=True),
    Column("supported", Boolean, nullable=False),
    Column("status", Integer),
    Column("detail", Text),
    Column("checked_at", UtcDateTime, nullable=False),
)

# How far one company's approved list of one type has been read: a page and its ids.
PollCursor = Table(
    "poll_cursors", metadata,
    Column("company_id", String, primary_key=True),
    Column("tx_type", String, primary_key=True),
    Column("page", Integer, nullable=False),
    Column("ids", Text, nullable=False),  # JSON list of the page's ids
    Column("swept_at", UtcDateTime),
    Column("updated_at", UtcDateTime, nullable=False),
)

# A named lease with its current holder and fencing token (expiry on the DB's clock).
Lease = Table(
    "leases", metadata,
    Column("name", String, primary_key=True),
    Column("holder", String, nullable=False),
    Column("token", BigInteger, nullable=False),
    Column("expires_at", Float(precision=53), nullable=False),
)

# One alert condition (``guard_block:acme``...): active or clear, with what it last said.
#
# Instances sharing the database move a row by compare-and-set, so a start or a clear is
# queued once however many instances observe it.
AlertCondition = Table(
    "alert_conditions", metadata,
    Column("key", String, primary_key=True),
    Column("condition", String, nullable=False),
    Column("subject", String, nullable=False),
    Column("status", String, nullable=False),
    Column("detail", Text, nullable=False),
    Column("data", JsonText, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("cleared_at", UtcDateTime),
)

# An alert message to send (the outbox): claimed by one sender, retried until sent.
AlertMessage = Table(
    "alert_outbox", metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("key", String, nullable=False),
    Column("event", String, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("due_at", UtcDateTime, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("delivered", JsonText, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("last_error", Text),
    Column("claimed_by", String),
    Column("claimed_until", UtcDateTime),
    Index("ix_alert_outbox_due", "sent_at", "due_at"),
)
