"""Settle writes whose outcome is unknown by READING iCompleat, never by sending them again.

An operation left ``intent`` (the process died around the call) or ``unknown`` (timeout, reset,
5xx on a write) may or may not have been applied. One read of the kind's remote list settles all
of them at once (one read per kind per round, however many unknowns): the remote copy takes the
remote truth for the operation's keys, the operation is closed as ``settled``, and the next plan
redoes only what the read shows missing. Refresh chunks are not settled key by key: their open
refresh marker makes the next plan finish the set, unless the read shows the last chunk landed
(the set is then live as planned, and nothing is sent again).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sync.reference.apply import KindRun, keys_digest
from sync.reference.remote import DEFINITIONS, RemoteRead, definition_rows, read_remote
from sync.reference.rules.keys import field_of
from sync.state.rows import OperationRow
from sync.state.store import StateStore


async def settle_open(run: KindRun, remote: RemoteRead | None = None) -> RemoteRead | None:
    """Settle every open operation of the run's kind with one read; the read, if one was made."""
    ops = await run.db(run.rt.store.open_operations, run.company.name, run.kind.name)
    if not ops:
        return remote
    if remote is None:
        remote = await read_remote(run)
        run.result.settle_reads += remote.reads
    await run.db(settle_operations, run, ops, remote)
    return remote


def settle_operations(run: KindRun, ops: Iterable[OperationRow], remote: RemoteRead) -> int:
    """Blocking: make the remote copy say what the read shows for each operation's keys."""
    settled = 0
    for op in ops:
        detail = _settle_one(run, op, remote)
        run.rt.store.record_outcome(op.id, "settled", detail, fence=run.fence)
        settled += 1
    return settled


def _settle_one(run: KindRun, op: OperationRow, remote: RemoteRead) -> str:
    if op.op == "refresh":
        return _settle_chunk(run, op, remote)
    if op.op.startswith("field"):
        return settle_fields(run, sorted({field_of(k) for k in op.keys}), remote)
    present = [k for k in op.keys if k in remote.records]
    absent = [k for k in op.keys if k not in remote.records]
    _take_remote(run.rt.store, run, present, remote)
    if op.op == "delete" and absent:
        run.rt.store.delete_remote(run.company.name, run.kind.name, absent, fence=run.fence)
    return f"{op.op}: read back {len(present)}/{len(op.keys)} present"


def _settle_chunk(run: KindRun, op: OperationRow, remote: RemoteRead) -> str:
    """A refresh chunk the read shows landed (every record live as sent) moves the marker on,
    so it is not sent again; the next chunk goes with the token this one was sent with (a
    service that chains tokens answers 20 and the refresh starts over). The LAST chunk landed
    (every earlier one was acknowledged) means the whole set is live: the read becomes the
    remote copy and the refresh is closed, with no chunk sent again. Else it is resent."""
    store, company, kind = run.rt.store, run.company.name, run.kind.name
    landed = all(k in remote.digests for k in op.keys) and keys_digest(
        op.keys, remote.digests) == op.payload_digest
    marker = next((m for m in store.open_refreshes(company) if m.kind == kind), None)
    if landed and marker is not None and marker.chunks_sent + 1 == marker.total_chunks:
        store.replace_remote(company, kind, [(k, r, remote.digests[k])
                                             for k, r in remote.records.items()],
                             fence=run.fence)
        store.end_refresh(company, kind, fence=run.fence)
        return (f"refresh chunk: the last, landed (read back {len(op.keys)} records); the "
                "set is live and the refresh closed")
    if landed and marker is not None and marker.last_token and marker.token_expires_at:
        store.advance_refresh(company, kind, chunks_sent=marker.chunks_sent + 1,
                              token=marker.last_token, token_expires_at=marker.token_expires_at,
                              fence=run.fence)
        return f"refresh chunk: landed (read back {len(op.keys)} records); marker moved on"
    return f"refresh chunk: {'landed' if landed else 'not applied'}; the refresh marker resumes"


def _take_remote(store: StateStore, run: KindRun, keys: list[str], remote: RemoteRead) -> None:
    rows = [(k, remote.records[k], remote.digests[k]) for k in keys]
    if rows:
        store.upsert_remote(run.company.name, run.kind.name, rows, fence=run.fence)


def settle_fields(run: KindRun, names: Sequence[str], remote: RemoteRead) -> str:
    """Blocking: the remote copy of fields ``names`` (values and definition) := the read."""
    store, company = run.rt.store, run.company.name
    wanted = set(names)
    stale = [k for k in store.remote_digests(company, run.kind.name) if field_of(k) in wanted]
    store.delete_remote(company, run.kind.name, stale, fence=run.fence)
    rows = [(k, r, remote.digests[k]) for k, r in remote.records.items() if field_of(k) in wanted]
    store.upsert_remote(company, run.kind.name, rows, fence=run.fence)
    store.delete_remote(company, DEFINITIONS, list(wanted), fence=run.fence)
    defs = definition_rows({n: d for n, d in remote.definitions.items() if n in wanted})
    store.upsert_remote(company, DEFINITIONS, defs, fence=run.fence)
    return f"fields {sorted(wanted)}: read back {len(rows)} values, {len(defs)} definitions"
