"""Leases with fencing tokens: one runner per company and job, across processes and hosts.

A lease row holds its current holder, a fencing token that grows by one on every acquisition,
and an expiry in seconds since the epoch ON THE DATABASE'S CLOCK (``clock_timestamp()`` on
PostgreSQL), so a step of a host's clock neither extends nor cuts a lease (RELIABILITY S18).
On SQLite the database's clock IS the host's clock (``julianday('now')``); SQLite state is for
one host, where every process sees the same clock.

Every fenced write re-reads the lease row inside its own transaction (``FOR SHARE`` on
PostgreSQL, so a take-over waits for the write to commit; ``BEGIN IMMEDIATE`` on SQLite) and
raises :class:`~sync.foundation.errors.LeaseLost` when the holder, the token or the expiry no
longer match.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

from sqlalchemy import Connection, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from sync.foundation.errors import LeaseLost
from sync.state.dialect import db_epoch, upsert_insert
from sync.state.models import Lease
from sync.state.rows import REFERENCE_JOB as REFERENCE_JOB  # re-exported, as before
from sync.state.rows import Fence, LeaseLook, LeaseRow
from sync.state.rows import lease_name as lease_name


def _fenced(fence: Fence) -> list[ColumnElement[bool]]:
    return [Lease.c.name == fence.name, Lease.c.holder == fence.holder,
            Lease.c.token == fence.token]


def check_ttl(ttl_seconds: float) -> float:
    """``ttl_seconds`` if it is a positive finite number; ValueError otherwise."""
    if not (math.isfinite(ttl_seconds) and ttl_seconds > 0):
        raise ValueError(f"lease time must be a positive number of seconds, not {ttl_seconds!r}")
    return float(ttl_seconds)


def check_fence(conn: Connection, fence: Fence) -> None:
    """LeaseLost unless ``fence`` is still the live holder and token of its lease."""
    now = db_epoch(conn.dialect.name)
    stmt = select(Lease.c.token).where(*_fenced(fence), Lease.c.expires_at > now)
    if conn.execute(stmt.with_for_update(read=True)).first() is None:
        raise LeaseLost(
            f"lease {fence.name!r} is no longer held by {fence.holder!r} with token "
            f"{fence.token}: it expired or another instance took it over. This instance must "
            "stop writing; the write was rolled back and the current holder carries on")


def acquire(conn: Connection, name: str, holder: str, ttl_seconds: float) -> Fence | None:
    """Take ``name`` if it is new, expired or already ours, bumping its token; else None."""
    dialect = conn.dialect.name
    expires = db_epoch(dialect) + check_ttl(ttl_seconds)
    insert = upsert_insert(dialect, Lease).values(
        name=name, holder=holder, token=1, expires_at=expires)
    inserted = insert.on_conflict_do_nothing(index_elements=["name"]).returning(Lease.c.token)
    if conn.execute(inserted).first() is not None:
        return Fence(name, holder, 1)
    taken = conn.execute(
        update(Lease)
        .where(Lease.c.name == name, or_(Lease.c.expires_at <= db_epoch(dialect),
                                       Lease.c.holder == holder))
        .values(holder=holder, token=Lease.c.token + 1, expires_at=expires)
        .returning(Lease.c.token)).first()
    return None if taken is None else Fence(name, holder, int(taken[0]))


def renew(conn: Connection, fence: Fence, ttl_seconds: float) -> bool:
    """Extend a lease that ``fence`` still holds and that has not expired; False otherwise."""
    dialect = conn.dialect.name
    result = conn.execute(
        update(Lease)
        .where(*_fenced(fence), Lease.c.expires_at > db_epoch(dialect))
        .values(expires_at=db_epoch(dialect) + check_ttl(ttl_seconds)))
    return result.rowcount == 1


def release(conn: Connection, fence: Fence) -> None:
    """End the lease now if ``fence`` still holds it (the token stays, for the next holder)."""
    now = db_epoch(conn.dialect.name)
    conn.execute(update(Lease).where(*_fenced(fence), Lease.c.expires_at > now)
                 .values(expires_at=now))


def look(conn: Connection, name: str) -> LeaseLook | None:
    """Lease ``name`` with its token when no one holds it now (a lease never taken: token 0);
    None while a holder's lease is live."""
    row = conn.execute(select(Lease.c.token, Lease.c.expires_at > db_epoch(conn.dialect.name))
                       .where(Lease.c.name == name)).first()
    if row is None:
        return LeaseLook(name, 0)
    return None if row[1] else LeaseLook(name, int(row[0]))


def all_leases(conn: Connection) -> list[LeaseRow]:
    """Every lease, with whether it is live by the database's clock, by name."""
    live = (Lease.c.expires_at > db_epoch(conn.dialect.name)).label("live")
    rows = conn.execute(
        select(Lease.c.name, Lease.c.holder, Lease.c.token, Lease.c.expires_at, live)
        .order_by(Lease.c.name))
    return [LeaseRow(name=r.name, holder=r.holder, token=int(r.token),
                     expires_at=datetime.fromtimestamp(r.expires_at, UTC), live=bool(r.live))
            for r in rows]
