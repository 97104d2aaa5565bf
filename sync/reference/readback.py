"""Read-back: compare iCompleat's lists with the remote copy, find drift, apply the drift policy.

Drift is what changed in iCompleat behind icsync's back: records added, edited or removed by hand.
Policy per company: ``source-wins`` (default) makes the remote copy take the remote truth, so the
normal diff that follows repairs iCompleat from the source; ``report`` only counts and shows it.

Lists can change while they are paged (a record removed before the current page shifts another
one out of sight), so a record missing from ONE read is never dropped from the remote copy: the
list is read again until two reads in a row agree, and a record seen by any read but missing
from the last is kept when they never agree. The same read rebuilds a lost or empty state
database from the remote lists, so the next plan neither deletes en masse nor creates anything
twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sync.reference.apply import KindRun, Records, display_key
from sync.reference.remote import DEFINITIONS, RemoteRead, definition_rows, read_remote

FieldDiff = tuple[str, Any, Any]


@dataclass(frozen=True)
class Drift:
    """Differences between iCompleat and the remote copy for one kind."""

    kind: str
    added: tuple[str, ...]
    edited: tuple[tuple[str, tuple[FieldDiff, ...]], ...]
    removed: tuple[str, ...]
    unconfirmed: tuple[str, ...]
    policy: str

    @property
    def count(self) -> int:
        """How many records drifted."""
        return len(self.added) + len(self.edited) + len(self.removed)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {"kind": self.kind, "policy": self.policy, "added": list(self.added),
                "removed": list(self.removed), "unconfirmed": list(self.unconfirmed),
                "edited": [{"key": k, "changes": [{"field": f, "state": b, "remote": a}
                                                  for f, b, a in ch]} for k, ch in self.edited]}

    def lines(self, limit: int = 20) -> list[str]:
        """Human-readable lines describing the drift (at most ``limit`` records)."""
        out = [f"added in iCompleat: {display_key(k)}" for k in self.added]
        out += [f"removed in iCompleat: {display_key(k)}" for k in self.removed]
        out += [f"edited in iCompleat: {display_key(k)}: "
                + "; ".join(f"{f}: {b!r} -> {a!r}" for f, b, a in ch) for k, ch in self.edited]
        return out[:limit] + ([f"... and {len(out) - limit} more"] if len(out) > limit else [])


def find_drift(kind: str, remote: Records, state: Records, remote_digests: Mapping[str, str],
               state_digests: Mapping[str, str], unconfirmed: tuple[str, ...],
               policy: str) -> Drift:
    """Pure: what differs between the remote truth and the remote copy."""
    added = tuple(sorted(k for k in remote if k not in state))
    removed = tuple(sorted(k for k in state if k not in remote))
    edited = tuple((k, field_changes(state[k], remote[k])) for k in sorted(remote)
                   if k in state and remote_digests.get(k) != state_digests.get(k))
    return Drift(kind, added, edited, removed, unconfirmed, policy)


def field_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> tuple[FieldDiff, ...]:
    """(field, before, after) for every field that differs."""
    return tuple((f, before.get(f), after.get(f)) for f in sorted({*before, *after})
                 if before.get(f) != after.get(f))


MAX_READS = 4


def merge_reads(reads: list[RemoteRead], state_keys: set[str]
                ) -> tuple[RemoteRead, tuple[str, ...]]:
    """The last read, plus records of the remote copy that an earlier read saw but the last one
    missed (never dropped on the word of one read). Returns them and those kept keys."""
    last = reads[-1]
    kept: dict[str, tuple[dict[str, Any], str]] = {}
    for read in reads[:-1]:
        kept.update({k: (r, read.digests[k]) for k, r in read.records.items()
                     if k in state_keys and k not in last.records})
    records = {**last.records, **{k: r for k, (r, _) in kept.items()}}
    digests = {**last.digests, **{k: d for k, (_, d) in kept.items()}}
    return RemoteRead(records, digests, sum(r.reads for r in reads), last.definitions), tuple(
        sorted(kept))


async def confirmed_read(run: KindRun, state_keys: set[str]) -> tuple[RemoteRead, tuple[str, ...]]:
    """Read the remote list; when it misses records of the remote copy, read again until two
    reads in a row agree (at most MAX_READS). Returns the truth and the keys kept unconfirmed."""
    reads = [await read_remote(run)]
    if not state_keys - reads[0].records.keys():
        return reads[0], ()
    while len(reads) < MAX_READS:
        reads.append(await read_remote(run))
        if reads[-1].records.keys() == reads[-2].records.keys():
            return reads[-1], ()
    return merge_reads(reads, state_keys)


async def readback_kind(run: KindRun) -> Drift:
    """Read back the run's kind, find drift and apply the company's drift policy."""
    store, company, kind = run.rt.store, run.company.name, run.kind.name
    state = await run.db(store.remote_records, company, kind)
    state_digests = await run.db(store.remote_digests, company, kind)
    remote, unconfirmed = await confirmed_read(run, set(state))
    policy = run.company.drift_policy
    drift = find_drift(kind, remote.records, state, remote.digests, state_digests, unconfirmed,
                       policy)
    run.result.drift = drift.count
    if policy == "source-wins" and (drift.count or remote.definitions):
        await run.db(take_remote_truth, run, remote)
    return drift


def take_remote_truth(run: KindRun, remote: RemoteRead) -> None:
    """Blocking: the remote copy of the run's kind := what the read found."""
    store, company = run.rt.store, run.company.name
    rows = [(k, r, remote.digests[k]) for k, r in remote.records.items()]
    store.replace_remote(company, run.kind.name, rows, fence=run.fence)
    if run.kind.field_values:
        store.replace_remote(company, DEFINITIONS, definition_rows(remote.definitions),
                             fence=run.fence)
