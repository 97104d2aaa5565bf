"""Alert conditions and the outbox of alert messages, shared by every instance on the database.

A condition (``guard_block:acme``, ``failing:acme:reference`` ...) is ``active`` or ``clear``.
:meth:`AlertStore.alert_observe` compares what a check found with the stored conditions it
covers and, in the same transaction, queues one ``start`` message when a condition begins, one
``clear`` message when it ends, and an ``update`` when a digest condition (the quarantine) gains
new items. Rows are read ``FOR UPDATE`` (PostgreSQL) or under ``BEGIN IMMEDIATE`` (SQLite), so
two instances observing the same thing queue it once. A check says when it began reading what
it judged (``seen_at``, on the database's clock: :meth:`AlertStore.alert_clock`), and a
condition remembers the latest such time recorded for it; an observation older than that is
stale and changes nothing, so a check that read before an operator resolved something, and
records after a check that read the resolve, never starts the alarm again.

The outbox is sent by whichever instance claims a message first (a claim expires, so a killed
sender's messages are picked up again); a channel that took the message is remembered, so a
retry after a partial failure never sends twice to the same channel. The rate limit counts the
messages sent in the last hour by every instance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from sync.foundation.clock import utcnow
from sync.state.db import Database
from sync.state.dialect import db_epoch, upsert_insert
from sync.state.models import AlertCondition, AlertMessage

ACTIVE, CLEAR = "active", "clear"
SEEN_AT = "seen_at"  # in a condition's data: when the latest observation recorded began reading
MAX_ITEMS_LISTED = 50


@dataclass(frozen=True)
class Finding:
    """A condition found to hold now; ``items`` (with a line each) make it a digest."""

    key: str
    condition: str
    subject: str
    title: str
    detail: str
    items: tuple[str, ...] = ()
    item_lines: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class AlertRow:
    """A stored condition."""

    key: str
    condition: str
    subject: str
    status: str
    detail: str
    data: Mapping[str, Any]
    started_at: datetime
    updated_at: datetime
    cleared_at: datetime | None


@dataclass(frozen=True)
class OutboxRow:
    """A queued alert message; ``delivered`` holds the ids of channels that took it."""

    id: int
    key: str
    event: str
    title: str
    body: str
    created_at: datetime
    due_at: datetime
    attempts: int
    delivered: tuple[str, ...]
    sent_at: datetime | None
    last_error: str | None


def _row(r: Any) -> AlertRow:
    m = r._mapping
    return AlertRow(m.key, m.condition, m.subject, m.status, m.detail, m.data or {},
                    m.started_at, m.updated_at, m.cleared_at)


def _outbox(r: Any) -> OutboxRow:
    m = dict(r._mapping)
    m["delivered"] = tuple(m["delivered"] or ())
    for name in ("claimed_by", "claimed_until"):
        m.pop(name, None)
    return OutboxRow(**m)


def digest_body(finding: Finding, new: Sequence[str]) -> str:
    """The finding's text, then a line per new item (at most MAX_ITEMS_LISTED)."""
    if not new:
        return finding.detail
    lines = [finding.item_lines.get(i, i) for i in new[:MAX_ITEMS_LISTED]]
    more = len(new) - len(lines)
    tail = [f"... and {more} more"] if more > 0 else []
    return "\n".join([finding.detail, "", f"New ({len(new)}):", *lines, *tail])


def clear_body(row: AlertRow, now: datetime) -> str:
    """What a clear message says."""
    return (f"Cleared at {now:%Y-%m-%d %H:%M:%S} UTC; it started at "
            f"{row.started_at:%Y-%m-%d %H:%M:%S} UTC.\nIt was: {row.detail}")


class AlertStore:
    """Alert conditions and the outbox."""

    _db: Database

    def alert_clock(self) -> float:
        """Seconds since the epoch by the database's clock (a check's ``seen_at``)."""
        with self._db.read("reading the database clock") as conn:
            return float(conn.execute(select(db_epoch(conn.dialect.name))).scalar_one())

    def alert_observe(self, scope: Sequence[str], findings: Sequence[Finding], *,
                      seen_at: float | None = None) -> list[str]:
        """Record the conditions of ``scope`` (the keys a check covered) as ``findings`` say;
        the events queued (``start:key``, ``update:key``, ``clear:key``). ``seen_at``: when
        the check began reading (:meth:`alert_clock`); a condition already observed later
        is left as it is (see the module docstring)."""
        found = {f.key: f for f in findings}
        keys = sorted(set(scope) | set(found))
        if not keys:
            return []
        seen = {} if seen_at is None else {SEEN_AT: seen_at}
        with self._db.write("recording alert conditions") as conn:
            stmt = select(AlertCondition).where(AlertCondition.c.key.in_(keys))
            rows = {r.key: _row(r) for r in conn.execute(stmt.with_for_update())}
            events = []
            for key in keys:
                row = rows.get(key)
                if row is not None and seen_at is not None and _seen(row) > seen_at:
                    continue  # stale: a check that read later has recorded already
                event = _observe_one(conn, row, found.get(key), key, seen)
                if event:
                    events.append(f"{event}:{key}")
            return events

    def note_capability_change(self, route: str, capability: str, before: Any,
                               after: Any) -> str | None:
        """Record that iCompleat's ``route`` changed ``capability`` from ``before`` to
        ``after``; the event queued (``start``, or ``clear`` when it is back where the alert
        started), or None. Safe to call from every instance: the change is alerted once."""
        key = f"capability:{route}:{capability}"
        now = utcnow()
        with self._db.write("recording a capability change") as conn:
            stmt = select(AlertCondition).where(AlertCondition.c.key == key)
            found = conn.execute(stmt.with_for_update()).first()
            row = None if found is None else _row(found)
            if row is not None and row.status == ACTIVE:
                if after == row.data.get("baseline"):
                    return _clear(conn, row, now)
                _set(conn, key, now, data={**row.data, "current": after})
                return None
            if before == after:
                return None
            title = f"iCompleat route {route}: {capability} changed from {before!r} to {after!r}"
            finding = Finding(key, "capability", route, title,
                              f"{title}. icsync adapts its calls to what the route now offers; "
                              "check that this change was expected.")
            return _start(conn, row, finding, now, {"baseline": before, "current": after})

    def alert_conditions(self, status: str | None = ACTIVE) -> list[AlertRow]:
        """Stored conditions, by key (only ``status`` ones unless None)."""
        stmt = select(AlertCondition).order_by(AlertCondition.c.key)
        if status is not None:
            stmt = stmt.where(AlertCondition.c.status == status)
        with self._db.read("reading alert conditions") as conn:
            return [_row(r) for r in conn.execute(stmt)]

    def alert_messages(self, *, pending: bool | None = None, limit: int = 100) -> list[OutboxRow]:
        """Queued messages, newest first (only unsent ones with ``pending=True``)."""
        stmt = select(AlertMessage).order_by(AlertMessage.c.id.desc()).limit(limit)
        if pending is not None:
            sent = AlertMessage.c.sent_at
            stmt = stmt.where(sent.is_(None) if pending else sent.is_not(None))
        with self._db.read("reading alert messages") as conn:
            return [_outbox(r) for r in conn.execute(stmt)]

    def alert_claim(self, holder: str, *, per_hour: int, claim_seconds: float = 120.0,
                    limit: int = 10) -> list[OutboxRow]:
        """Claim due, unsent messages for ``holder`` to send, within the hourly budget."""
        now = utcnow()
        with self._db.write("claiming alert messages") as conn:
            recent = conn.execute(select(func.count()).select_from(AlertMessage)
                                  .where(AlertMessage.c.sent_at >= now - timedelta(hours=1)))
            budget = min(limit, per_hour - int(recent.scalar_one()))
            if budget <= 0:
                return []
            free = (AlertMessage.c.claimed_until.is_(None)) | (AlertMessage.c.claimed_until < now)
            stmt = (select(AlertMessage.c.id).where(AlertMessage.c.sent_at.is_(None),
                                                  AlertMessage.c.due_at <= now, free)
                    .order_by(AlertMessage.c.id).limit(budget))
            ids = [r[0] for r in conn.execute(stmt.with_for_update(skip_locked=True))]
            if not ids:
                return []
            conn.execute(update(AlertMessage).where(AlertMessage.c.id.in_(ids)).values(
                claimed_by=holder, claimed_until=now + timedelta(seconds=claim_seconds)))
            rows = conn.execute(select(AlertMessage)
                                .where(AlertMessage.c.id.in_(ids)).order_by(AlertMessage.c.id))
            return [_outbox(r) for r in rows]

    def alert_release(self, holder: str) -> None:
        """Give up ``holder``'s claims on unsent messages (at shutdown)."""
        with self._db.write("releasing alert claims") as conn:
            conn.execute(update(AlertMessage).where(
                AlertMessage.c.claimed_by == holder, AlertMessage.c.sent_at.is_(None)).values(
                claimed_by=None, claimed_until=None))

    def alert_prune(self, days: float) -> int:
        """Forget messages sent more than ``days`` ago; how many."""
        cutoff = utcnow() - timedelta(days=days)
        with self._db.write("pruning sent alert messages") as conn:
            done = conn.execute(delete(AlertMessage).where(AlertMessage.c.sent_at < cutoff))
            return int(done.rowcount or 0)

    def alert_delivered(self, message_id: int, holder: str, channel: str) -> None:
        """Remember that ``channel`` took message ``message_id`` (never sent there again)."""
        with self._db.write("recording an alert delivery") as conn:
            mine = (AlertMessage.c.id == message_id) & (AlertMessage.c.claimed_by == holder)
            row = conn.execute(select(AlertMessage.c.delivered).where(mine)).first()
            if row is not None and channel not in (row[0] or []):
                conn.execute(update(AlertMessage).where(mine)
                             .values(delivered=[*(row[0] or []), channel]))

    def alert_sent(self, message_id: int, holder: str) -> None:
        """Mark a claimed message sent to every channel."""
        with self._db.write("recording an alert sent") as conn:
            conn.execute(update(AlertMessage).where(
                AlertMessage.c.id == message_id, AlertMessage.c.claimed_by == holder).values(
                sent_at=utcnow(), claimed_by=None, claimed_until=None, last_error=None))

    def alert_retry(self, message_id: int, holder: str, error: str, due_at: datetime) -> None:
        """A send failed: count it, keep the error, and make the message due again later."""
        with self._db.write("recording an alert send failure") as conn:
            conn.execute(update(AlertMessage).where(
                AlertMessage.c.id == message_id, AlertMessage.c.claimed_by == holder).values(
                attempts=AlertMessage.c.attempts + 1, last_error=error[:2000], due_at=due_at,
                claimed_by=None, claimed_until=None))


def _seen(row: AlertRow) -> float:
    """When the latest observation recorded for ``row`` began reading (-inf: never said)."""
    value = row.data.get(SEEN_AT)
    return float(value) if isinstance(value, int | float) else float("-inf")


def _observe_one(conn: Connection, row: AlertRow | None, finding: Finding | None,
                 key: str, seen: Mapping[str, float]) -> str | None:
    now = utcnow()
    active = row is not None and row.status == ACTIVE
    if finding is not None and not active:
        return _start(conn, row, finding, now, {"items": list(finding.items), **seen})
    if seen and row is not None and _seen(row) != seen[SEEN_AT]:
        conn.execute(update(AlertCondition).where(AlertCondition.c.key == key)
                     .values(data={**row.data, **seen}))  # the time only: no message
        row = replace(row, data={**row.data, **seen})
    if finding is not None and row is not None:
        known = set(row.data.get("items", []))
        new = [i for i in finding.items if i not in known]
        if list(finding.items) != row.data.get("items", []):
            _set(conn, key, now, data={**row.data, "items": list(finding.items)},
                 detail=finding.detail)
        if new:
            _queue(conn, key, "update", f"[icsync] {finding.title}", digest_body(finding, new),
                   now)
            return "update"
        return None
    if finding is None and active and row is not None:
        return _clear(conn, row, now)
    return None


def _start(conn: Connection, row: AlertRow | None, finding: Finding, now: datetime,
           data: dict[str, Any]) -> str | None:
    values = {"condition": finding.condition, "subject": finding.subject, "status": ACTIVE,
              "detail": finding.detail, "data": {**data, "title": finding.title},
              "started_at": now, "updated_at": now, "cleared_at": None}
    if row is None:
        stmt = upsert_insert(conn.dialect.name, AlertCondition).values(key=finding.key, **values)
        inserted = stmt.on_conflict_do_nothing(index_elements=["key"]).returning(
            AlertCondition.c.key)
        if conn.execute(inserted).first() is None:
            return None  # another instance recorded it first, and queued the message
    else:
        done = conn.execute(update(AlertCondition).where(
            AlertCondition.c.key == finding.key, AlertCondition.c.status == CLEAR).values(**values))
        if done.rowcount != 1:
            return None
    _queue(conn, finding.key, "start", f"[icsync] {finding.title}",
           digest_body(finding, list(finding.items)), now)
    return "start"


def _clear(conn: Connection, row: AlertRow, now: datetime) -> str | None:
    done = conn.execute(update(AlertCondition).where(
        AlertCondition.c.key == row.key, AlertCondition.c.status == ACTIVE).values(
        status=CLEAR, cleared_at=now, updated_at=now))
    if done.rowcount != 1:
        return None
    title = str(row.data.get("title") or row.key)
    _queue(conn, row.key, "clear", f"[icsync] cleared: {title}", clear_body(row, now), now)
    return "clear"


def _set(conn: Connection, key: str, now: datetime, **values: Any) -> None:
    conn.execute(update(AlertCondition).where(AlertCondition.c.key == key)
                 .values(updated_at=now, **values))


def _queue(conn: Connection, key: str, event: str, title: str, body: str,
           now: datetime) -> None:
    conn.execute(insert(AlertMessage).values(
        key=key, event=event, title=title, body=body, created_at=now, due_at=now, attempts=0,
        delivered=[]))
