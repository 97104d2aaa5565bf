"""Run one kind's plan against iCompleat, journaling every call in the state database.

Each write goes: intent recorded -> call -> remote copy updated -> outcome recorded, with a named
crash point at every boundary (``after_intent``, ``after_remote_call``, ``before_state_update``),
so a process killed anywhere is resumed by the next run without a duplicate or a loss: an open
intent is settled by a read (:mod:`sync.reference.settle`), never re-sent blindly.

Outcomes of one call: acknowledged (state updated), unknown (journal ``unknown``; settled by
a read later in the run), rejected with 400 (the rows are quarantined with iCompleat's code and
message; a rejected chunk is bisected so its good rows still land), or failed (not applied:
throttled, refused connection; the kind ends ``partial``). A 401 propagates: the run stops.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import pandas as pd

from sync.foundation import clock
from sync.foundation.config import CompanyConfig
from sync.foundation.crashpoints import crash_point
from sync.foundation.entities import WRITE_CHUNK_SIZE, Kind
from sync.foundation.errors import (
    ApiError,
    AuthRejected,
    BadContinuationToken,
    BadRequest,
    BadUser,
    CustomFieldNotFound,
    OutcomeUnknown,
    UnknownCompany,
    UnknownRecord,
    UnknownTransaction,
    Unsupported,
)
from sync.reference.rules.columns import column_objects
from sync.reference.rules.normalise import canonical_records
from sync.runtime.context import Runtime
from sync.state.rows import Fence, QuarantineEntry

T = TypeVar("T")

# How long a continuation token is trusted after its last use. iCompleat does not say; the
# sandbox keeps them an hour, so stay well inside that. An expired token costs one 400 (code 20).
TOKEN_TTL = timedelta(minutes=50)
# Consecutive not-applied failures (throttled, refused) after which a kind stops for this run.
MAX_CONSECUTIVE_FAILURES = 3

Records = dict[str, dict[str, Any]]


@dataclass
class KindResult:
    """What one run did for one kind (``calls`` counts reads and writes)."""

    kind: str
    created: int = 0
    edited: int = 0
    deleted: int = 0
    unchanged: int = 0
    rejected: int = 0
    failed: int = 0
    calls: int = 0
    seconds: float = 0.0
    strategy: str = "none"
    writes: int = 0
    reads: int = 0
    unknown: int = 0
    settle_reads: int = 0
    drift: int = 0
    partial_window_seconds: float | None = None
    blank: int = 0     # blank source rows skipped (an export's trailer line)
    filtered: int = 0  # source rows the kind's where filter left out
    outcome: str = "ok"
    error: str | None = None
    stages: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain data, for JSON and the runs table."""
        return {**self.__dict__, "stages": {k: round(v, 4) for k, v in self.stages.items()}}

    def timed(self, stage: str, seconds: float) -> None:
        """Add ``seconds`` to the time spent in ``stage`` (read, normalise, state, plan...)."""
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds


@dataclass
class ApplyOutcome:
    """How an apply round ended: ``replan`` when a token was refused or missing, ``stopped``
    when calls kept failing; unknown outcomes are counted in ``KindResult.unknown``."""

    replan: bool = False
    stopped: bool = False
    completed: bool = True



def canonical(kind: Kind, records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The canonical frame of remote records (see
    :func:`sync.reference.rules.normalise.canonical_records`)."""
    return canonical_records(kind, records)


def frame_records(kind: Kind, frame: pd.DataFrame) -> tuple[Records, dict[str, str]]:
    """(key -> API record without None values, key -> digest) from a canonical frame."""
    sent = [f for f in kind.sent_fields if f in frame.columns]
    # Column by column (a text column may be Arrow-backed: see column_objects), then by row.
    cells = [column_objects(frame[f]).tolist() for f in sent]
    records = {str(k): {f: v for f, v in zip(sent, row, strict=True)
                        if v is not None and not _is_nan(v)}
               for k, *row in zip(frame.index.tolist(), *cells, strict=True)}
    digests = {str(k): str(v) for k, v in frame["_digest"].items()} if len(frame) else {}
    return records, digests


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and value != value


@dataclass
class KindRun:
    """One kind of one company in one run: the journal, the counters and the progress."""

    rt: Runtime
    company: CompanyConfig
    kind: Kind
    run_id: int | None
    fence: Fence | None
    result: KindResult
    on_progress: Callable[[int], None] | None = None
    failures_in_row: int = 0
    rejected_keys: set[str] = field(default_factory=set)

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a blocking state-store method off the event loop."""
        return await asyncio.to_thread(fn, *args, **kwargs)

    async def journaled(self, op: str, keys: Sequence[str], digest: str,
                        send: Callable[[], Awaitable[T]]) -> tuple[int, T]:
        """Record intent, send, and mark the operation unknown/failed if it did not succeed."""
        store = self.rt.store
        op_id = await self.db(store.record_intent, self.run_id, self.company.name, self.kind.name,
                              op, list(keys), digest, fence=self.fence)
        crash_point("after_intent")
        self.result.calls += 1
        self.result.writes += 1
        try:
            value = await send()
        except OutcomeUnknown as exc:
            self.result.unknown += 1
            await self.db(store.record_outcome, op_id, "unknown", str(exc)[:500],
                          fence=self.fence)
            raise
        except ApiError as exc:
            await self.db(store.record_outcome, op_id, "failed", str(exc)[:500],
                          fence=self.fence)
            raise
        finally:
            if self.on_progress is not None:
                self.on_progress(1)
        crash_point("after_remote_call")
        return op_id, value

    async def acknowledged(self, op_id: int, update: Callable[[], None]) -> None:
        """Bring the remote copy in line with an acknowledged call, then close the operation."""
        crash_point("before_state_update")
        await self.db(update)
        await self.db(self.rt.store.record_outcome, op_id, "done", fence=self.fence)
        self.failures_in_row = 0

    def not_applied(self, exc: ApiError, count: int = 1) -> bool:
        """Count a call that was not applied; True when the kind should stop for this run."""
        self.result.failed += count
        self.result.error = str(exc)
        self.failures_in_row += 1
        return self.failures_in_row >= MAX_CONSECUTIVE_FAILURES

    async def quarantine(self, rows: Sequence[tuple[str, str]], exc: BadRequest) -> None:
        """Set (key, source digest) rows aside with iCompleat's error code and message."""
        self.result.rejected += len(rows)
        self.rejected_keys.update(key for key, _ in rows)
        entries = [QuarantineEntry(
            key=key, reason="remote_rejected", field=getattr(exc, "field", None),
            origin="remote", source_digest=digest,
            message=(f"iCompleat refused {self.kind.label.lower()} {display_key(key)!r} "
                     f"(error {exc.error_code}: {exc.api_message or exc}). Fix the row in the "
                     "ERP; it is not sent again until it changes or an operator retries it "
                     "(icsync errors)")) for key, digest in rows]
        await self.db(self.rt.store.quarantine, self.company.name, self.kind.name, entries,
                      fence=self.fence)


# 400s about the call, not the rows in it: never a reason to quarantine a record.
NOT_ABOUT_ROWS = (UnknownCompany, BadUser, UnknownTransaction, BadContinuationToken,
                  CustomFieldNotFound)


def row_rejection(exc: BadRequest) -> bool:
    """True when iCompleat refused the records sent (validation, or a code it did not explain),
    False when the 400 is about the company, the user, the token or a missing custom field."""
    return not isinstance(exc, NOT_ABOUT_ROWS)


def display_key(key: str) -> str:
    """A key as people read it (custom field keys are ``Field / Code``)."""
    return key.replace("\x1f", " / ")


async def edit_one(run: KindRun, key: str, record: Mapping[str, Any], digest: str,
                   missing: list[str]) -> None:
    """PUT one record; a record gone from iCompleat (11) is re-created by append instead."""
    api, cid = run.kind.api, run.company.company_id
    store, name = run.rt.store, run.company.name
    try:
        op_id, _ = await run.journaled("edit", [key], digest, lambda: run.rt.client.edit_reference(
            api, cid, key, record))
    except UnknownRecord:
        await run.db(store.delete_remote, name, run.kind.name, [key], fence=run.fence)
        missing.append(key)
        return
    except BadRequest as exc:
        if not row_rejection(exc):
            raise
        await run.quarantine([(key, digest)], exc)
        return
    await run.acknowledged(op_id, lambda: store.upsert_remote(
        name, run.kind.name, [(key, dict(record), digest)], fence=run.fence))
    run.result.edited += 1
    await run.rt.capabilities.worked(f"{api}.edit")


async def delete_one(run: KindRun, key: str) -> None:
    """DELETE one record; "unknown record" (11) means it is already gone: done."""
    store, name = run.rt.store, run.company.name
    try:
        op_id, _ = await run.journaled("delete", [key], "", lambda: run.rt.client.delete_reference(
            run.kind.api, run.company.company_id, key))
    except UnknownRecord:
        await run.db(store.delete_remote, name, run.kind.name, [key], fence=run.fence)
        run.result.deleted += 1
        return
    await run.acknowledged(op_id, lambda: store.delete_remote(
        name, run.kind.name, [key], fence=run.fence))
    run.result.deleted += 1
    await run.rt.capabilities.worked(f"{run.kind.api}.delete")


async def apply_targeted(run: KindRun, edits: Sequence[str], creates: Sequence[str],
                         deletes: Sequence[str], records: Records, digests: Mapping[str, str],
                         token: str | None) -> ApplyOutcome:
    """Edits one by one, then the creates appended with ``token``, then the deletes."""
    out, missing = ApplyOutcome(), list[str]()
    for key in edits:
        if not await _step(run, out, edit_one(run, key, records[key], digests[key], missing)):
            return out
    pending = [*creates, *missing]
    if pending and token is None:
        out.replan = True  # no valid token (any more): the next round plans a refresh
    elif pending and token is not None and not await _step(
            run, out, append(run, pending, records, digests, token, out)):
        return out
    for key in deletes:
        if not await _step(run, out, delete_one(run, key)):
            return out
    return out


async def _step(run: KindRun, out: ApplyOutcome, call: Awaitable[None]) -> bool:
    """Run one journaled step; False when the kind must stop for this run."""
    try:
        await call
    except AuthRejected:
        raise
    except OutcomeUnknown:
        return True  # recorded as unknown; settled by a read at the end of the round
    except BadContinuationToken:
        await run.db(run.rt.store.clear_append_token, run.company.name, run.kind.name,
                     fence=run.fence)
        out.replan = True
    except Unsupported as exc:  # no edit-one/delete-one here: remembered, re-planned as refresh
        await run.rt.capabilities.refused(exc.route, exc)
        out.completed, out.replan = False, True
        return False
    except ApiError as exc:
        out.completed = False
        out.stopped = run.not_applied(exc)
        return not out.stopped
    return True


async def append(run: KindRun, keys: Sequence[str], records: Records,
                 digests: Mapping[str, str], token: str, out: ApplyOutcome) -> None:
    """Append new records to the live set in chunks, bisecting any chunk iCompleat rejects."""
    store, name, kind = run.rt.store, run.company.name, run.kind.name

    def ack(acked: list[str], new_token: str) -> None:
        store.upsert_remote(name, kind, [(k, records[k], digests[k]) for k in acked],
                            fence=run.fence)
        store.set_append_token(name, kind, new_token, clock.utcnow() + TOKEN_TTL, fence=run.fence)
        run.result.created += len(acked)

    for start in range(0, len(keys), chunk_size(run)):
        chunk = list(keys[start:start + chunk_size(run)])
        token = await send_rows(run, chunk, records, digests, token, op="append", ack=ack)


def chunk_size(run: KindRun) -> int:
    """How many records one POST of the run's kind carries (the route's page size)."""
    route = run.rt.client.routes.get(run.kind.route("post"))
    return (route.page_size if route else None) or WRITE_CHUNK_SIZE


Post = Callable[[list[dict[str, Any]], str], Awaitable[str]]
# Blocking state update for acknowledged rows (keys, the token the answer carried); it runs
# before the operation is closed, so a crash in between leaves an open operation to settle.
Ack = Callable[[list[str], str], None]


async def send_rows(run: KindRun, keys: list[str], records: Records, digests: Mapping[str, str],
                    token: str, *, op: str, post: Post | None = None, ack: Ack | None = None,
                    ) -> str:
    """POST ``keys`` with ``token``; on a 400 split the rows in halves until the bad ones are
    isolated and quarantined. Returns the token to continue with ("" while nothing landed)."""
    post = post or _post_reference(run)
    body = [records[k] for k in keys]
    try:
        op_id, new_token = await run.journaled(op, keys, keys_digest(keys, digests),
                                               lambda: post(body, token))
    except BadRequest as exc:
        if not row_rejection(exc):
            raise
        if len(keys) == 1:
            await run.quarantine([(keys[0], digests[keys[0]])], exc)
            return token
        half = len(keys) // 2
        token = await send_rows(run, keys[:half], records, digests, token, op=op, post=post,
                                ack=ack)
        return await send_rows(run, keys[half:], records, digests, token, op=op, post=post,
                               ack=ack)
    await run.acknowledged(op_id, lambda: ack(keys, new_token) if ack is not None else None)
    return new_token


def _post_reference(run: KindRun) -> Post:
    async def post(body: list[dict[str, Any]], token: str) -> str:
        return await run.rt.client.post_reference(run.kind.api, run.company.company_id, body,
                                                  token)
    return post


def keys_digest(keys: Sequence[str], digests: Mapping[str, str]) -> str:
    """A stable digest of a set of records (keys in order with their digests)."""
    text = "\n".join(f"{k}\t{digests[k]}" for k in keys)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
