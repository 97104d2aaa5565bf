"""The no-op fast path: skip normalising and diffing a kind whose inputs did not change.

After a run of a kind that may be repeated (see :func:`keeps`), its FINGERPRINT is kept in the
state database: a hash of the raw source frame as read, a hash of everything that shapes the
plan (the kind's source mapping, the validation, delete and guard settings, this version of
icsync), a hash of the remote copy's keys and digests, and a hash of the kind's quarantined rows
(key, origin, status, digest and reason of each). The next run that reads the same raw frame,
with the same settings, against the same remote copy and quarantine, and finds no open refresh
or operation, knows its plan without computing it. Any difference (one cell in the ERP, a
setting, a hand edit repaired by a read-back, an operator's retry of a quarantined row) takes
the normal path. ``--full`` never takes the fast path.

Two kinds of run keep one:

- a CLEAN run (outcome ok, nothing rejected or warned) that may have applied changes: the next
  run's plan over the same inputs is empty (every record unchanged);
- an IDLE run (its first plan sent nothing) with findings: rows rejected or warned by the
  validation, rows iCompleat refused and still held, deletes suppressed by the delete policy.
  Its fingerprint carries a :class:`Replay`: the plan and findings the run computed from these
  very inputs, which the rules (pure functions of them) would compute again. The fast path
  reports them as a full run would, and quarantines the rejected rows again (their
  ``last_seen`` moves on). A replay is kept only up to :data:`REPLAY_MAX` findings and keys,
  so a run with many bad rows takes the normal path (its findings are not stored twice).

Real exports carry a few bad rows for months; without the replay, each of their runs would
normalise, digest and compare every row (and load the whole stored copy, since held keys need
their records) to learn again what the previous run learned.

Fingerprints live in the remote-copy table under the pseudo kind :data:`FINGERPRINTS` (key: the
kind's name), so no schema change is needed. A fingerprint stored before the quarantine hash
existed matches an empty quarantine only (what its run required).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from connectors.sqlite_child import QueryTimedOut, read_query
from sync.reference.apply import KindRun
from sync.reference.rules.diff import KindDiff
from sync.reference.rules.findings import Rejection
from sync.reference.rules.keys import in_key_order, key_order
from sync.reference.rules.plan import KindPlan
from sync.state.rows import QuarantineRow

FINGERPRINTS = "_fingerprints"
_READ_SECONDS = 300.0  # the reader process's bound on reading a kind's keys and digests
RULES_VERSION = "1"  # bump when normalisation or planning rules change meaning


def _version() -> str:
    try:
        return metadata.version("icompleat-sync")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "source"


REPLAY_MAX = 10_000  # findings and keys a replay may hold (a few MB of JSON at most)


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists (JSON's form)."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TypeError("not a list of keys")
    return tuple(value)


def _plan_of(record: Mapping[str, Any]) -> KindPlan:
    """The plan stored by :meth:`Replay.record` (TypeError, KeyError or ValueError when it
    is not one, or when it would send anything)."""
    d = dict(record["diff"])
    if d.get("creates") or d.get("edits"):
        raise ValueError("a replayed plan sends nothing")
    diff = KindDiff(kind=str(d["kind"]), deletes=_strings(d["deletes"]),
                    unchanged=int(d["unchanged"]), held=_strings(d["held"]))
    known = {f.name for f in fields(KindPlan)} - {"diff", "chunks"}
    values = {k: v for k, v in record.items() if k in known}
    for name in ("kept", "deferred", "field_creates", "field_edits", "field_deletes",
                 "value_sets"):
        values[name] = _strings(values.get(name, []))
    plan = KindPlan(diff=diff, chunks=(), **values)
    if plan.calls or plan.strategy != "none":
        raise ValueError("a replayed plan sends nothing")
    return plan


def _rejection_of(record: Mapping[str, Any]) -> Rejection:
    known = {f.name for f in fields(Rejection)}
    if set(record) - known:
        raise ValueError("not a rejection")
    return Rejection(**record)


@dataclass(frozen=True)
class Replay:
    """What an idle run computed from its inputs: its first plan (which sends nothing), the
    rows it set aside or warned about, and its counts."""

    plan: KindPlan
    rejected: tuple[Rejection, ...]
    warnings: tuple[Rejection, ...]
    rejected_rows: int  # the kind's rejected count (validation and held refusals)
    blank: int
    filtered: int
    outcome: str

    @property
    def size(self) -> int:
        """Findings and keys held (bounded by :data:`REPLAY_MAX`)."""
        p = self.plan
        return (len(self.rejected) + len(self.warnings) + len(p.diff.deletes)
                + len(p.diff.held) + len(p.kept) + len(p.deferred))

    def record(self) -> dict[str, Any]:
        """As stored (plain JSON data)."""
        plan = {f.name: getattr(self.plan, f.name) for f in fields(KindPlan)
                if f.name not in ("diff", "chunks")}
        plan["diff"] = asdict(self.plan.diff)
        out: dict[str, Any] = _plain({
            "plan": plan, "rejected": [asdict(r) for r in self.rejected],
            "warnings": [asdict(w) for w in self.warnings], "rejected_rows": self.rejected_rows,
            "blank": self.blank, "filtered": self.filtered, "outcome": self.outcome})
        return out

    @classmethod
    def from_record(cls, record: Any) -> Replay | None:
        """From the stored form; None when it is not one (the run then takes the full
        path)."""
        try:
            replay = cls(plan=_plan_of(record["plan"]),
                         rejected=tuple(map(_rejection_of, record["rejected"])),
                         warnings=tuple(map(_rejection_of, record["warnings"])),
                         rejected_rows=int(record["rejected_rows"]), blank=int(record["blank"]),
                         filtered=int(record["filtered"]), outcome=str(record["outcome"]))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        return replay if replay.outcome in ("ok", "partial") else None


def quarantine_hash(rows: Sequence[QuarantineRow]) -> str:
    """A stable hash of a kind's quarantined rows: what decides which rows a plan holds and
    what an operator set (times and ids left out)."""
    parts = sorted((r.key, r.origin, r.status, r.source_digest or "", r.reason, r.field or "",
                    r.message) for r in rows)
    text = json.dumps(parts, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


NO_QUARANTINE = quarantine_hash(())


@dataclass(frozen=True)
class Fingerprint:
    """What a kind's repeatable run started from and ended with."""

    source: str
    settings: str
    remote: str
    count: int
    quarantine: str = NO_QUARANTINE
    replay: Replay | None = None

    def record(self) -> dict[str, Any]:
        """As stored in the remote-copy table."""
        out: dict[str, Any] = {"source": self.source, "settings": self.settings,
                               "remote": self.remote, "count": self.count,
                               "quarantine": self.quarantine}
        if self.replay is not None:
            out["replay"] = self.replay.record()
        return out

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Fingerprint | None:
        """From the stored form; None when it is not one. A stored replay that cannot be read
        gives None as well: the run must not take the fast path without it."""
        try:
            kept = cls(str(record["source"]), str(record["settings"]), str(record["remote"]),
                       int(record["count"]), str(record.get("quarantine", NO_QUARANTINE)))
        except (KeyError, TypeError, ValueError, AttributeError):
            return None
        if "replay" not in record:
            return kept
        replay = Replay.from_record(record["replay"])
        return None if replay is None else replace(kept, replay=replay)


class _Sink:
    """A write-only file that hashes what is written to it."""

    def __init__(self) -> None:
        self.hash = hashlib.sha256()
        self.closed = False

    def write(self, data: Any) -> int:
        self.hash.update(data)
        return len(memoryview(data))

    def flush(self) -> None:
        return None


def _arrow_hash(frame: pd.DataFrame) -> bytes | None:
    """SHA-256 of the Arrow stream of a frame whose every column is Arrow-backed, else None."""
    if not len(frame.columns) or not all(isinstance(t, pd.ArrowDtype) for t in frame.dtypes):
        return None
    table = pa.table([pa.array(frame.iloc[:, i]) for i in range(len(frame.columns))],
                     names=[str(c) for c in frame.columns])
    sink = _Sink()
    with pa.ipc.new_stream(pa.PythonFile(sink, mode="w"), table.schema) as writer:
        writer.write_table(table)
    return sink.hash.digest()


def source_hash(frame: pd.DataFrame) -> str:
    """A stable hash of a raw source frame: column names, dtypes and every cell (an Arrow-backed
    frame is hashed as its Arrow stream, in one pass over its buffers)."""
    head = json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()])
    cells = _arrow_hash(frame)
    if cells is None:
        try:
            cells = pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()
        except UnicodeEncodeError:  # lone surrogates (undecodable bytes kept for quarantine)
            escaped = frame.map(lambda v: repr(v) if isinstance(v, str) else v)
            cells = pd.util.hash_pandas_object(escaped, index=False).to_numpy().tobytes()
    return hashlib.sha256(head.encode() + b"\0" + cells).hexdigest()


def settings_hash(*parts: Any) -> str:
    """A stable hash of the settings that shape a kind's plan (pydantic models or plain data)."""
    def plain(value: Any) -> Any:
        dump = getattr(value, "model_dump", None)
        return dump(mode="json") if callable(dump) else value

    text = json.dumps([RULES_VERSION, _version(), *map(plain, parts)], sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def remote_hash(keys: Sequence[str] | pa.Array, digests: Sequence[str] | pa.Array) -> str:
    """A stable hash of the remote copy's keys and digests (``key TAB digest`` lines in key
    order, joined by newlines), built in Arrow: a million keys in a fraction of a second. The
    keys and digests come as lists or as Arrow string arrays (the same hash); keys Arrow
    cannot hold (lone surrogates) give the same text through Python."""
    k: Any = keys
    d: Any = digests
    if not isinstance(keys, pa.Array):
        try:
            k, d = pa.array(keys, type=pa.string()), pa.array(digests, type=pa.string())
        except (pa.ArrowException, UnicodeError):
            text = "\n".join(f"{keys[i]}\t{digests[i]}" for i in key_order(list(keys)).tolist())
            return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    k, d = in_key_order(k, d)
    large = pa.large_string()
    lines = pc.binary_join_element_wise(
        k.cast(large), pa.scalar("\t", large), d.cast(large),
        pa.scalar("\n", large), pa.scalar("", large))
    sha = hashlib.sha256()
    if len(lines):  # the lines lie end to end: hash them at once, less the last newline
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int64)
        first, last = int(offsets[lines.offset]), int(offsets[lines.offset + len(lines)])
        sha.update(memoryview(lines.buffers()[2] or b"")[first:last - 1])
    return sha.hexdigest()


def _string_pair(table: pa.Table | None) -> tuple[Any, Any] | None:
    """The two columns of ``table`` as string arrays; None unless it has rows of two text
    columns (an empty read may come back untyped)."""
    if table is None or table.num_columns != 2 or not table.num_rows:
        return None
    keys, digests = (table.column(i).combine_chunks() for i in (0, 1))
    if not all(pa.types.is_string(a.type) or pa.types.is_large_string(a.type)
               for a in (keys, digests)):
        return None
    return keys, digests


@dataclass(frozen=True)
class StoredCopy:
    """The keys and digests of a kind's remote copy as stored, and their :func:`remote_hash`."""

    keys: Any
    digests: Any
    hash: str


async def copy_now(run: KindRun) -> StoredCopy:
    """The kind's remote copy as stored now (read as :func:`remote_now` does; hashed off the
    event loop)."""
    keys, digests = await remote_now(run)
    return StoredCopy(keys, digests, await asyncio.to_thread(remote_hash, keys, digests))


async def remote_now(run: KindRun) -> tuple[Any, Any]:
    """The keys and digests of the kind's remote copy as stored. On a SQLite state file they
    are read as Arrow by the SQLite reader process (never a second SQLite library in this
    process: see :mod:`connectors.sql`), a second faster at a million keys and off this
    process's cores; else as lists."""
    store, company, kind = run.rt.store, run.company.name, run.kind.name
    query = store.remote_key_digest_query(company, kind)
    if query is not None:
        try:
            pair = _string_pair(await asyncio.to_thread(read_query, *query, _READ_SECONDS))
        except QueryTimedOut:
            pair = None
        if pair is not None:
            return pair
    return await run.db(store.remote_key_digests, company, kind)


def kind_settings(run: KindRun) -> str:
    """The settings hash of the run's kind (mapping, validation, delete and guard settings)."""
    settings, company, kind = run.rt.config.settings, run.company, run.kind.name
    source = settings.sources[str(company.source)]
    return settings_hash(kind, company.company_id, source.type, source.kinds.get(kind),
                         settings.validation, company.delete_policy.get(kind, "delete"),
                         settings.guard_for(company, kind), company.drift_policy)


async def stored(run: KindRun) -> Fingerprint | None:
    """The fingerprint kept by the kind's last clean run, if any."""
    records = await run.db(run.rt.store.remote_records, run.company.name, FINGERPRINTS)
    found = records.get(run.kind.name)
    return Fingerprint.from_record(found) if found is not None else None


async def _quarantine_now(run: KindRun) -> str:
    """The hash of the kind's quarantined rows as stored now (hashed off the event loop: an
    ERP can leave thousands)."""
    rows = await run.db(run.rt.store.quarantined, run.company.name, run.kind.name, None)
    return await asyncio.to_thread(quarantine_hash, rows)


async def unchanged(run: KindRun, source: str, settings: str,
                    remote: Awaitable[StoredCopy] | None = None) -> Fingerprint | None:
    """The fingerprint kept by the kind's last repeatable run when nothing can have changed
    since (same source, settings, remote copy and quarantine; no open refresh); else None.
    ``remote``: the :func:`copy_now` of the run when it is already on its way."""
    kept = await stored(run)
    if kept is None or (kept.source, kept.settings) != (source, settings):
        return None
    store, company, kind = run.rt.store, run.company.name, run.kind.name
    copy = await (remote if remote is not None else copy_now(run))
    if copy.hash != kept.remote:
        return None
    markers = await run.db(store.open_refreshes, company)
    if any(m.kind == kind or m.kind.startswith(f"{kind}/") for m in markers):
        return None
    if await _quarantine_now(run) != kept.quarantine:
        return None
    return replace(kept, count=len(copy.keys))


async def keep(run: KindRun, source: str, settings: str, *,
               remote: StoredCopy | None = None, replay: Replay | None = None) -> None:
    """Remember a repeatable run's fingerprint (the remote copy and quarantine as they are
    now), with the ``replay`` of an idle run that had findings. ``remote``: that copy when
    the run already holds it (it read it, then wrote nothing); otherwise it is read."""
    store, company, kind = run.rt.store, run.company.name, run.kind.name
    if remote is None:
        remote = await copy_now(run)
    quarantine = await _quarantine_now(run)
    mark = Fingerprint(source, settings, remote.hash, len(remote.keys), quarantine, replay)
    await run.db(store.upsert_remote, company, FINGERPRINTS,
                 [(kind, mark.record(), mark.remote)], fence=run.fence)
