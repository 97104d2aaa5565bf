"""What iCompleat holds, as far as we know: the remote copy, refresh markers, append tokens."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, delete, func, select, update

from sync.foundation import clock
from sync.state.db import Database, sqlite_path
from sync.state.dialect import batched, upsert_insert
from sync.state.models import AppendToken, CheckedValues, RefreshMarker, RemoteRecord
from sync.state.rows import Fence, RefreshRow

RemoteRow = tuple[str, Mapping[str, Any], str]


def _batches(rows: Iterable[RemoteRow], company: str, kind: str) -> Iterator[list[dict[str, Any]]]:
    now = clock.utcnow()
    for batch in batched(rows):
        yield [{"company": company, "kind": kind, "key": key, "record": dict(record),
                "digest": digest, "synced_at": now} for key, record, digest in batch]


def _upsert(conn: Connection, company: str, kind: str, rows: Iterable[RemoteRow]) -> None:
    stmt = upsert_insert(conn.dialect.name, RemoteRecord)
    stmt = stmt.on_conflict_do_update(
        index_elements=["company", "kind", "key"],
        set_={c: stmt.excluded[c] for c in ("record", "digest", "synced_at")})
    for batch in _batches(rows, company, kind):
        conn.execute(stmt, batch)


def _where(table: Table, company: str, kind: str) -> tuple[Any, Any]:
    return table.c.company == company, table.c.kind == kind


def _key_digests(company: str, kind: str) -> Select[tuple[str, str]]:
    return select(RemoteRecord.c.key, RemoteRecord.c.digest).where(
        *_where(RemoteRecord, company, kind))


class RemoteStore:
    """The last known remote copy of each company's reference data, and refreshes under way."""

    _db: Database

    def remote_records(self, company: str, kind: str) -> dict[str, dict[str, Any]]:
        """Every known remote record of ``kind``, by key, exactly as stored."""
        with self._db.read("reading remote records") as conn:
            rows = conn.execute(select(RemoteRecord.c.key, RemoteRecord.c.record)
                                .where(*_where(RemoteRecord, company, kind)))
            return {key: record for key, record in rows}

    def remote_records_of(self, company: str, kind: str,
                          keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The known remote records of ``keys`` (those stored), by key, exactly as stored: a
        few records of a million without reading the rest."""
        out: dict[str, dict[str, Any]] = {}
        with self._db.read("reading remote records") as conn:
            for batch in batched(dict.fromkeys(keys)):
                rows = conn.execute(select(RemoteRecord.c.key, RemoteRecord.c.record).where(
                    *_where(RemoteRecord, company, kind), RemoteRecord.c.key.in_(batch)))
                out.update({key: record for key, record in rows})
        return out

    def remote_digests(self, company: str, kind: str) -> dict[str, str]:
        """The digest of every known remote record of ``kind``, by key."""
        with self._db.read("reading remote digests") as conn:
            rows = conn.execute(select(RemoteRecord.c.key, RemoteRecord.c.digest)
                                .where(*_where(RemoteRecord, company, kind)))
            return {key: digest for key, digest in rows}

    def remote_key_digests(self, company: str, kind: str) -> tuple[list[str], list[str]]:
        """The keys and the digests of every known remote record of ``kind`` as two lists
        (in no particular order): a million rows without a million-entry dict."""
        rows = self._db.read_tuples("reading remote digests", _key_digests(company, kind))
        return [r[0] for r in rows], [r[1] for r in rows]

    def remote_key_digest_query(self, company: str, kind: str) -> tuple[str, str, list[Any]] | None:
        """(SQLite file, SQL with ``?`` parameters, parameters) of :meth:`remote_key_digests`,
        for a reader in another process to run (Arrow, no Python object per value); None when
        the state database is not a SQLite file."""
        path = sqlite_path(self._db.url)
        if path is None:
            return None
        sql, params = self._db.driver_sql(_key_digests(company, kind))
        return str(path), sql, list(params)

    def remote_count(self, company: str, kind: str) -> int:
        """How many remote records of ``kind`` are known."""
        with self._db.read("counting remote records") as conn:
            stmt = select(func.count()).where(*_where(RemoteRecord, company, kind))
            return int(conn.execute(stmt).scalar_one())

    def has_remote(self, company: str, kind: str) -> bool:
        """Whether any remote record of ``kind`` is known: one index probe, where counting
        them walks the whole index (half a second at a million records)."""
        with self._db.read("looking for remote records") as conn:
            stmt = select(RemoteRecord.c.key).where(*_where(RemoteRecord, company, kind)).limit(1)
            return conn.execute(stmt).first() is not None

    def upsert_remote(self, company: str, kind: str, rows: Iterable[RemoteRow], *,
                      fence: Fence | None = None) -> None:
        """Insert or replace records given as ``(key, record, digest)``."""
        with self._db.write(f"storing {company}/{kind} remote records", fence) as conn:
            _upsert(conn, company, kind, rows)

    def delete_remote(self, company: str, kind: str, keys: Iterable[str], *,
                      fence: Fence | None = None) -> None:
        """Forget the records with these keys (absent keys are ignored)."""
        with self._db.write(f"deleting {company}/{kind} remote records", fence) as conn:
            for batch in batched(keys):
                conn.execute(delete(RemoteRecord).where(
                    *_where(RemoteRecord, company, kind), RemoteRecord.c.key.in_(batch)))

    def replace_remote(self, company: str, kind: str, rows: Iterable[RemoteRow], *,
                       fence: Fence | None = None) -> None:
        """Make ``rows`` the whole known set of ``kind``, in one transaction."""
        with self._db.write(f"replacing {company}/{kind} remote records", fence) as conn:
            conn.execute(delete(RemoteRecord).where(*_where(RemoteRecord, company, kind)))
            _upsert(conn, company, kind, rows)

    def checked_values(self, company: str, kind: str) -> dict[str, tuple[str, bytes]]:
        """Per check name (``iban``, ``bic``, ``vat``): the rules and the encoded good values
        kept by :meth:`keep_checked_values` for ``kind``."""
        with self._db.read("reading checked values") as conn:
            rows = conn.execute(select(CheckedValues.c.name, CheckedValues.c.rules,
                                       CheckedValues.c.good)
                                .where(*_where(CheckedValues, company, kind)))
            return {name: (rules, bytes(good)) for name, rules, good in rows}

    def keep_checked_values(self, company: str, kind: str, rules: str,
                            values: Mapping[str, bytes], *, fence: Fence | None = None) -> None:
        """Keep, per check name, the encoded values its check found good (replacing what was
        kept under that name), judged by ``rules``."""
        if not values:
            return
        now = clock.utcnow()
        with self._db.write(f"keeping {company}/{kind} checked values", fence) as conn:
            stmt = upsert_insert(conn.dialect.name, CheckedValues)
            stmt = stmt.on_conflict_do_update(
                index_elements=["company", "kind", "name"],
                set_={c: stmt.excluded[c] for c in ("rules", "good", "updated_at")})
            conn.execute(stmt, [{"company": company, "kind": kind, "name": name,
                                 "rules": rules, "good": good, "updated_at": now}
                                for name, good in values.items()])

    def begin_refresh(self, company: str, kind: str, *, total_chunks: int, plan_hash: str,
                      fence: Fence | None = None) -> None:
        """Mark a refresh of ``kind`` as started (replacing any earlier marker)."""
        values = {"company": company, "kind": kind, "started_at": clock.utcnow(),
                  "last_token": None,
                  "token_expires_at": None, "chunks_sent": 0, "total_chunks": total_chunks,
                  "plan_hash": plan_hash}
        with self._db.write(f"starting the {company}/{kind} refresh", fence) as conn:
            stmt = upsert_insert(conn.dialect.name, RefreshMarker).values(**values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["company", "kind"],
                                                    set_=values))

    def advance_refresh(self, company: str, kind: str, *, chunks_sent: int, token: str,
                        token_expires_at: datetime, fence: Fence | None = None) -> None:
        """Record that ``chunks_sent`` chunks landed and the token to continue with."""
        values = {"chunks_sent": chunks_sent, "last_token": token,
                  "token_expires_at": clock.require_aware(token_expires_at, "token_expires_at")}
        with self._db.write(f"advancing the {company}/{kind} refresh", fence) as conn:
            done = conn.execute(update(RefreshMarker)
                                .where(*_where(RefreshMarker, company, kind)).values(**values))
            if done.rowcount != 1:
                raise ValueError(f"no refresh of {company}/{kind} is in progress; "
                                 "call begin_refresh first")

    def end_refresh(self, company: str, kind: str, *, fence: Fence | None = None) -> None:
        """Remove the refresh marker of ``kind`` (the refresh completed)."""
        with self._db.write(f"ending the {company}/{kind} refresh", fence) as conn:
            conn.execute(delete(RefreshMarker).where(*_where(RefreshMarker, company, kind)))

    def open_refreshes(self, company: str | None = None) -> list[RefreshRow]:
        """Refreshes started and not ended (all companies when ``company`` is None)."""
        stmt = select(RefreshMarker).order_by(RefreshMarker.c.company, RefreshMarker.c.kind)
        if company is not None:
            stmt = stmt.where(RefreshMarker.c.company == company)
        with self._db.read("reading refresh markers") as conn:
            return [RefreshRow(**r._mapping) for r in conn.execute(stmt)]

    def append_token(self, company: str, kind: str) -> tuple[str, datetime] | None:
        """The stored continuation token of the live set of ``kind`` and its expiry."""
        stmt = select(AppendToken.c.token, AppendToken.c.expires_at).where(
            *_where(AppendToken, company, kind))
        with self._db.read("reading an append token") as conn:
            row = conn.execute(stmt).first()
        return None if row is None else (row.token, row.expires_at)

    def set_append_token(self, company: str, kind: str, token: str, expires_at: datetime, *,
                         fence: Fence | None = None) -> None:
        """Store the continuation token of the live set of ``kind``."""
        values = {"company": company, "kind": kind, "token": token,
                  "expires_at": clock.require_aware(expires_at, "expires_at")}
        with self._db.write(f"storing the {company}/{kind} append token", fence) as conn:
            stmt = upsert_insert(conn.dialect.name, AppendToken).values(**values)
            conn.execute(stmt.on_conflict_do_update(index_elements=["company", "kind"],
                                                    set_=values))

    def clear_append_token(self, company: str, kind: str, *, fence: Fence | None = None) -> None:
        """Forget the append token of ``kind`` (expired, or the set was refreshed)."""
        with self._db.write(f"clearing the {company}/{kind} append token", fence) as conn:
            conn.execute(delete(AppendToken).where(*_where(AppendToken, company, kind)))
