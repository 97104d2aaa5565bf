"""A pure model of iCompleat's live set and a small checker, for the pure-level scenarios.

:func:`run` is one planning run as the engine makes it (normalise, diff with the held keys,
plan, guard, restrict when blocked), then the plan's calls applied to an in-memory remote
exactly as the contract says: a refresh replaces the set with its chunks, a targeted plan edits
and deletes one record at a time and appends its chunks. :func:`check` counts, against the
source, L (lost), D (duplicated: colliding codes), X (unexpected) and the calls by type.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from sync.foundation.config import GuardConfig, ValidationConfig
from sync.foundation.entities import Kind
from sync.reference.rules.diff import diff
from sync.reference.rules.guard import check_guard
from sync.reference.rules.keys import collision_key
from sync.reference.rules.normalise import KindMapping, Normalised, canonical_records, normalise
from sync.reference.rules.plan import GuardVerdict, KindPlan, Plan, plan_kind, restricted

Records = dict[str, dict[str, Any]]


@dataclass
class Remote:
    """iCompleat's live set of one kind: key -> record as sent."""

    kind: Kind
    records: Records = field(default_factory=dict)

    def state(self) -> pd.DataFrame:
        """The state frame a read-back of this remote gives."""
        return canonical_records(self.kind, list(self.records.values()))


@dataclass(frozen=True)
class Run:
    """What one planning run decided and what it sent."""

    normalised: Normalised
    plan: KindPlan
    verdict: GuardVerdict
    calls: Counter[str]

    def company_plan(self) -> Plan:
        """The run as a company plan (for hashes and rendering)."""
        blocked = (self.verdict,) if self.verdict.rule else ()
        return Plan("uk", (self.plan,), self.normalised.rejected, self.normalised.warnings,
                    blocked)


def _records(frame: pd.DataFrame, kind: Kind, keys: tuple[str, ...] | list[str]) -> Records:
    rows = frame.loc[list(keys), list(kind.sent_fields)].to_dict("index")
    return {str(k): {f: v for f, v in row.items() if v is not None} for k, row in rows.items()}


def apply(remote: Remote, plan: KindPlan, source: pd.DataFrame) -> Counter[str]:
    """Send ``plan`` to ``remote``; returns the calls made, by type."""
    calls: Counter[str] = Counter()
    kind = remote.kind
    if plan.strategy == "refresh":
        new: Records = {}
        for chunk in plan.chunks:
            calls["refresh"] += 1
            from_source = [k for k in chunk if k in source.index]
            new.update(_records(source, kind, from_source))
            new.update({k: remote.records[k] for k in chunk if k not in source.index})
        remote.records = new
        return calls
    for edit in plan.diff.edits:
        calls["edit"] += 1
        remote.records.update(_records(source, kind, [edit.key]))
    for key in plan.deletes:
        calls["delete"] += 1
        remote.records.pop(key)
    for chunk in plan.chunks:
        calls["append"] += 1
        remote.records.update(_records(source, kind, list(chunk)))
    return calls


def run(remote: Remote, raw: pd.DataFrame, *, complete: bool = True, allow: bool = False,
        guard: GuardConfig | None = None, validation: ValidationConfig | None = None,
        mapping: KindMapping | None = None) -> Run:
    """One run of one kind against ``remote``: plan, guard, then apply what may be applied."""
    kind, state = remote.kind, remote.state()
    norm = normalise(kind, raw, mapping, validation, known=state)
    d = diff(kind, norm.frame, state, hold=norm.held_keys)
    plan = plan_kind(kind, d, norm.frame)
    verdict = check_guard(kind.name, "uk", source_count=len(raw), remote_count=len(state),
                          complete=complete, plan=plan, config=guard or GuardConfig(),
                          allow=allow)
    if not verdict.allowed:
        plan = restricted(kind, plan, norm.frame)
    return Run(norm, plan, verdict, apply(remote, plan, norm.frame))


@dataclass(frozen=True)
class Check:
    """Lost, duplicated and unexpected keys of a remote against the source's valid rows."""

    lost: tuple[str, ...]
    duplicated: tuple[str, ...]
    unexpected: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """L = D = X = 0."""
        return not (self.lost or self.duplicated or self.unexpected)


def check(remote: Remote, expected: pd.DataFrame, allowed_extra: set[str] | None = None) -> Check:
    """Compare the remote with the canonical ``expected`` frame (held keys may stay extra)."""
    state = remote.state()
    have, want = set(state.index), set(expected.index)
    lost = sorted(k for k in want if k not in have
                  or state.at[k, "_digest"] != expected.at[k, "_digest"])
    folded = Counter(collision_key(k) for k in have)
    duplicated = sorted(k for k in have if folded[collision_key(k)] > 1)
    unexpected = sorted(have - want - (allowed_extra or set()))
    return Check(tuple(lost), tuple(duplicated), tuple(unexpected))
