"""The no-op fast path: skip normalising and diffing a kind whose inputs did not change.

After a clean run of a kind (outcome ok, nothing rejected or warned, nothing left open), its
FINGERPRINT is kept in the state database: a hash of the raw source frame as read, a hash of
everything that shapes the plan (the kind's source mapping, the validation, delete and guard
settings, this version of icsync) and a hash of the remote copy's keys and digests. The next run
that reads the same raw frame, with the same settings, against the same remote copy, and finds
no open refresh, operation or quarantined row, knows the plan is empty without computing it.
Any difference (one cell in the ERP, a setting, a hand edit repaired by a read-back) takes the
normal path. ``--full`` never takes the fast path.

Fingerprints live in the remote-copy table under the pseudo kind :data:`FINGERPRINTS` (key: the
kind's name), so no schema change is needed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from connectors.sqlite_child import QueryTimedOut, read_query
from sync.reference.apply import KindRun
from sync.reference.rules.keys import key_order

FINGERPRINTS = "_fingerprints"
_READ_SECONDS = 300.0  # the reader process's bound on reading a kind's keys and digests
RULES_VERSION = "1"  # bump when normalisation or planning rules change meaning


def _version() -> str:
    try:
        return metadata.version("icompleat-sync")
    except metadata.PackageNotFoundError:  # running from a source tree
        return "source"


@dataclass(frozen=True)
class Fingerprint:
    """What a kind's clean run started from and ended with."""

    source: str
    settings: str
    remote: str
    count: int

    def record(self) -> dict[str, Any]:
        """As stored in the remote-copy table."""
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Fingerprint | None:
        """From the stored form; None when it is not one."""
        try:
            return cls(str(record["source"]), str(record["settings"]), str(record["remote"]),
                       int(record["count"]))
        except (KeyError, TypeError, ValueError):
            return None


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
    take = pc.array_sort_indices(k)  # the byte order of UTF-8 is code point order
    large = pa.large_string()
    lines = pc.binary_join_element_wise(
        k.take(take).cast(large), pa.scalar("\t", large), d.take(take).cast(large),
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


async def unchanged(run: KindRun, source: str, settings: str,
                    remote: Awaitable[tuple[Any, Any]] | None = None) -> int | None:
    """How many records the kind has remotely when nothing can have changed since its last
    clean run (same source, settings and remote copy; nothing open or quarantined); else None.
    ``remote``: the :func:`remote_now` of the run when it is already on its way."""
    kept = await stored(run)
    if kept is None or (kept.source, kept.settings) != (source, settings):
        return None
    store, company, kind = run.rt.store, run.company.name, run.kind.name
    keys, digests = await (remote if remote is not None else remote_now(run))
    if await asyncio.to_thread(remote_hash, keys, digests) != kept.remote:
        return None
    markers = await run.db(store.open_refreshes, company)
    if any(m.kind == kind or m.kind.startswith(f"{kind}/") for m in markers):
        return None
    if await run.db(store.quarantined, company, kind, None):
        return None
    return len(keys)


async def keep(run: KindRun, source: str, settings: str, *,
               remote: tuple[Any, Any] | None = None) -> None:
    """Remember a clean run's fingerprint (the remote copy as it is now). ``remote``: the
    keys and digests of that copy when the run already holds them (it read them, then wrote
    nothing); otherwise they are read."""
    store, company, kind = run.rt.store, run.company.name, run.kind.name
    if remote is None:
        remote = await remote_now(run)
    keys, digests = remote
    mark = Fingerprint(source, settings, await asyncio.to_thread(remote_hash, keys, digests),
                       len(keys))
    await run.db(store.upsert_remote, company, FINGERPRINTS,
                 [(kind, mark.record(), mark.remote)], fence=run.fence)
