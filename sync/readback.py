"""Read-back: compare iCompleat's lists with the remote copy, find drift, apply the drift policy.

Drift is what changed in iCompleat behind icsync's back: records added, edited or removed by hand.
Policy per company: ``source-wins`` (default) makes the remote copy take the remote truth, so the
normal diff that follows repairs iCompleat from the source; ``report`` only counts and shows it.

Lists can change while they are paged (a record inserted before the current page shifts another
one out of sight), so a record missing from ONE read is never dropped from the remote copy: a
second read must miss it too. The same read rebuilds a lost or empty state database from the
remote lists, so the next plan neither deletes en masse nor creates anything twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sync.apply import KindRun, Records, display_key
from sync.settle import RemoteRead, read_remote

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


def merge_reads(first: RemoteRead, second: RemoteRead) -> tuple[RemoteRead, tuple[str, ...]]:
    """The later read, plus records only the first one saw (missing from ONE read only)."""
    only_first = tuple(sorted(k for k in first.records if k not in second.records))
    records = {**second.records, **{k: first.records[k] for k in only_first}}
    digests = {**second.digests, **{k: first.digests[k] for k in only_first}}
    definitions = {**first.definitions, **second.definitions}
    return RemoteRead(records, digests, first.reads + second.reads, definitions), only_first


async def confirmed_read(run: KindRun, state_keys: set[str]) -> tuple[RemoteRead, tuple[str, ...]]:
    """Read the remote list; read again when it misses records of the remote copy, and treat as
    gone only what BOTH reads miss. Returns the truth and the keys seen by one read only."""
    first = await read_remote(run)
    if not state_keys - first.records.keys():
        return first, ()
    return merge_reads(first, await read_remote(run))


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
    if run.kind.name == "custom_fields":
        from sync.apply_fields import DEFINITIONS, definition_rows

        store.replace_remote(company, DEFINITIONS, definition_rows(remote.definitions),
                             fence=run.fence)
