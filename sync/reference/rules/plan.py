"""The calls that make iCompleat equal to the source, chosen by counting them (pure, no IO).

Cost model (icompleat-api.md Part B). There is no create-one call: new records reach iCompleat
only by a REFRESH (a POST with an empty token replaces the live set with its first chunk, then
token-chained chunks of 100 follow) or by APPENDING chunks of 100 with a still-valid
continuation token of the live set. Edits and deletes are one call per record.

- targeted = edits + deletes + ceil(creates / 100); impossible (None) when there are creates
  and no token to append with;
- refresh = ceil(size of the set / 100), at least 1; the set is the source plus the KEPT
  records: held rows (rejected or quarantined, sent as the state has them) and, under the
  ``ignore`` delete policy, the remote records the source lacks. A refresh deletes whatever is
  not in its set, so keeping them in it is what makes a refresh possible under ``ignore``.
- the cheaper one wins, ties go to targeted; nothing to do is strategy ``none`` (0 calls).

Custom fields are keyed by field and value and planned by :func:`plan_custom_fields`: new
definitions in one POST per 100 new fields, an edited definition (Type or Mandatory) one PUT,
a field gone from the source one DELETE, and each field whose values changed has its whole
value set replaced in chunks of 100 (``chunks`` then holds every such field's chunks, field by
field).

``chunks`` holds the keys of each write of 100: the whole set for a refresh, the new records'
append chunks for a targeted plan.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any, Literal

import pandas as pd

from sync.foundation.entities import WRITE_CHUNK_SIZE, Kind, chunked
from sync.foundation.reprs import brief_repr
from sync.reference.rules.diff import KindDiff
from sync.reference.rules.findings import Rejection
from sync.reference.rules.keys import field_of, sha256_hex
from sync.reference.rules.values import canonical_json

Strategy = Literal["none", "targeted", "refresh"]
DeletePolicy = Literal["delete", "ignore"]
DEFINITION_FIELDS = ("Type", "Mandatory")


def shallow(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The fields of a flat dataclass as a dict, without :func:`dataclasses.asdict`'s deep
    copy (whose cost grows with every key of a million-row plan)."""
    return {f.name: getattr(obj, f.name) for f in fields(obj) if f.name not in skip}


@dataclass(frozen=True)
class GuardVerdict:
    """The guard's verdict on a kind's plan (:mod:`sync.reference.rules.guard` decides it):
    whether it may run; ``rule`` names the rule that refused (or was overridden)."""

    allowed: bool
    rule: str | None
    message: str
    kind: str = ""
    company: str = ""


@dataclass(frozen=True)
class KindPlan:
    """The chosen strategy for one kind, its call count, and the alternatives' counts."""

    __repr__ = brief_repr

    kind: str
    strategy: Strategy
    diff: KindDiff
    source_count: int
    remote_count: int
    calls: int
    targeted_calls: int | None
    refresh_calls: int
    chunks: tuple[tuple[str, ...], ...] = ()
    rejected: int = 0
    deletes_suppressed: int = 0
    kept: tuple[str, ...] = ()
    deferred: tuple[str, ...] = ()
    forced: bool = False
    field_creates: tuple[str, ...] = ()
    field_edits: tuple[str, ...] = ()
    field_deletes: tuple[str, ...] = ()
    value_sets: tuple[str, ...] = ()

    @property
    def deletes(self) -> tuple[str, ...]:
        """The records this plan removes from iCompleat (none when deletes are suppressed)."""
        return () if self.deletes_suppressed else self.diff.deletes

    @property
    def is_destructive(self) -> bool:
        """True when the plan may remove remote records: a refresh, or any delete."""
        return self.strategy == "refresh" or bool(self.deletes or self.field_deletes)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (chunks as a count: their keys follow from the set and the diff)."""
        out = shallow(self, skip=("diff", "chunks"))
        return {**out, "chunks": len(self.chunks), **self.diff.to_dict(), "kind": self.kind}


def chunks_of(keys: Sequence[str], size: int = WRITE_CHUNK_SIZE) -> tuple[tuple[str, ...], ...]:
    """``keys`` in consecutive chunks of ``size``, as plain data for the plan."""
    return tuple(tuple(c) for c in chunked(keys, size))


def _set_keys(source: pd.DataFrame, kept: Sequence[str]) -> list[str]:
    """The sorted keys of a complete set: the source's plus the kept ones."""
    if kept or not (source.index.is_monotonic_increasing and source.index.is_unique):
        return sorted({*source.index.tolist(), *kept})
    return list(source.index.tolist())


def _set_size(source: pd.DataFrame, kept: Sequence[str]) -> int:
    """``len(_set_keys(source, kept))`` without building (and sorting) the set: what the cost
    of a refresh needs, at a million rows a second less when rows are held."""
    index = source.index
    size = len(index) if index.is_unique else int(index.nunique())
    return size + sum(1 for k in set(kept) if k not in index)


def _kept(d: KindDiff, delete_policy: DeletePolicy) -> tuple[str, ...]:
    return tuple(sorted({*d.held, *(d.deletes if delete_policy == "ignore" else ())}))


def _check_force(force: Strategy | None) -> None:
    if force not in (None, "targeted", "refresh"):
        raise ValueError(f"force must be 'targeted' or 'refresh', not {force!r}")


def plan_kind(
    kind: Kind, d: KindDiff, source: pd.DataFrame, *, delete_policy: DeletePolicy = "delete",
    can_append: bool = False, force: Strategy | None = None, allow_refresh: bool = True,
    rejected: int = 0,
) -> KindPlan:
    """The cheapest correct plan for a paged kind (cost model in the module docstring).

    ``force`` picks the strategy (ValueError when a targeted plan is impossible);
    ``allow_refresh=False`` never refreshes: new records that cannot be appended are
    ``deferred`` and left out (what a guard-blocked run may still send).
    """
    _check_force(force)
    deletes = () if delete_policy == "ignore" else d.deletes
    kept = _kept(d, delete_policy)
    can_create = can_append or not d.creates
    targeted = len(d.edits) + len(deletes) + math.ceil(len(d.creates) / WRITE_CHUNK_SIZE)
    refresh = max(1, math.ceil(_set_size(source, kept) / WRITE_CHUNK_SIZE))
    if force == "targeted" and not can_create:
        raise ValueError(f"{kind.label}: {len(d.creates)} new records cannot be sent without "
                         "a continuation token to append with; a refresh is needed")
    work = bool(d.creates or d.edits or deletes)
    if force == "refresh" or (allow_refresh and work and (not can_create or refresh < targeted)):
        strategy: Strategy = "refresh"
        chunks = chunks_of(_set_keys(source, kept))
    else:
        strategy = "targeted" if (work or force) else "none"
        creates = d.creates if can_create else ()
        chunks = chunks_of(creates)
    deferred = () if strategy == "refresh" or can_create else d.creates
    calls = {"refresh": refresh, "none": 0}.get(strategy, len(d.edits) + len(deletes) + len(chunks))
    return KindPlan(
        kind=kind.name, strategy=strategy, diff=d, source_count=len(source),
        remote_count=d.remote_count, calls=calls,
        targeted_calls=targeted if can_create else None, refresh_calls=refresh, chunks=chunks,
        rejected=rejected, deletes_suppressed=len(d.deletes) if delete_policy == "ignore" else 0,
        kept=kept, deferred=deferred, forced=force is not None)


def restricted(kind: Kind, plan: KindPlan, source: pd.DataFrame, *,
               can_append: bool = False) -> KindPlan:
    """What ``plan`` may still do when the guard blocks it: creates and edits, no deletes and
    no refresh (new records that would need a refresh are deferred)."""
    if kind.field_values:
        return plan_custom_fields(kind, plan.diff, source, delete_policy="ignore",
                                  rejected=plan.rejected)
    return plan_kind(kind, plan.diff, source, delete_policy="ignore", can_append=can_append,
                     allow_refresh=False, rejected=plan.rejected)


def _fields(keys: Iterable[str]) -> set[str]:
    return {field_of(k) for k in keys}


def _group(keys: Iterable[str]) -> dict[str, list[str]]:
    """Keys grouped by their custom field, in the order given."""
    groups: dict[str, list[str]] = {}
    for key in keys:
        groups.setdefault(field_of(key), []).append(key)
    return groups


@dataclass(frozen=True)
class _FieldWork:
    """Which custom fields a diff creates, edits, deletes, and whose value sets change."""

    new: tuple[str, ...]
    edited: tuple[str, ...]
    gone: tuple[str, ...]
    values: tuple[str, ...]


def _field_work(d: KindDiff, fields: set[str], ignore: bool) -> _FieldWork:
    remote = _fields([*d.deletes, *d.held, *d.edited_keys]) | (fields - _fields(d.creates))
    new = {f for f in fields if f not in remote}
    definition = {field_of(e.key) for e in d.edits
                  if any(c.field in DEFINITION_FIELDS for c in e.changes)}
    values = {field_of(e.key) for e in d.edits
              if any(c.field not in DEFINITION_FIELDS for c in e.changes)}
    values |= _fields(d.creates) | (set() if ignore else _fields(d.deletes) & fields)
    gone = set() if ignore else _fields(d.deletes) - fields - _fields(d.held)
    return _FieldWork(tuple(sorted(new)), tuple(sorted(definition - new)), tuple(sorted(gone)),
                      tuple(sorted(values)))


def plan_custom_fields(
    kind: Kind, d: KindDiff, source: pd.DataFrame, state: pd.DataFrame | None = None, *,
    delete_policy: DeletePolicy = "delete", force: Strategy | None = None, rejected: int = 0,
) -> KindPlan:
    """Plan custom field definitions and per-field value sets (see the module docstring).

    ``state`` is accepted for symmetry; everything needed is in the diff and the source. Under
    the ``ignore`` policy no field is deleted and removed values stay in their field's set.
    """
    _check_force(force)
    ignore = delete_policy == "ignore"
    by_field = _group(str(k) for k in source.index.tolist())
    kept = _kept(d, delete_policy)
    work = _field_work(d, set(by_field), ignore)
    values = tuple(sorted(by_field)) if force == "refresh" else work.values
    kept_by_field = _group(kept)
    chunks = tuple(c for f in values for c in chunks_of(
        sorted({*by_field.get(f, ()), *kept_by_field.get(f, ())})))
    fixed = math.ceil(len(work.new) / WRITE_CHUNK_SIZE) + len(work.edited) + len(work.gone)
    every = sum(math.ceil(len(v) / WRITE_CHUNK_SIZE) for v in by_field.values())
    calls = fixed + len(chunks)
    strategy: Strategy = "refresh" if force == "refresh" else "targeted" if calls else "none"
    return KindPlan(
        kind=kind.name, strategy=strategy, diff=d, source_count=len(source),
        remote_count=d.remote_count, calls=calls, targeted_calls=calls,
        refresh_calls=fixed + every, chunks=chunks, rejected=rejected,
        deletes_suppressed=len(d.deletes) if ignore else 0, kept=kept,
        forced=force is not None, field_creates=work.new, field_edits=work.edited,
        field_deletes=work.gone, value_sets=values)


@dataclass(frozen=True)
class Plan:
    """Everything one run would do for one company, and the rows it sets aside."""

    __repr__ = brief_repr

    company: str
    kinds: tuple[KindPlan, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    warnings: tuple[Rejection, ...] = ()
    verdicts: tuple[GuardVerdict, ...] = field(default=())

    @property
    def total_calls(self) -> int:
        """Write calls over every kind."""
        return sum(k.calls for k in self.kinds)

    def kind(self, name: str) -> KindPlan | None:
        """The plan of kind ``name``, if it was planned."""
        return next((k for k in self.kinds if k.kind == name), None)

    def _body(self) -> dict[str, Any]:
        def order(r: Rejection) -> tuple[str, int, str, str]:
            return (r.kind, r.row or 0, r.field or "", r.reason)

        return {
            "company": self.company, "total_calls": self.total_calls,
            "kinds": [k.to_dict() for k in self.kinds],
            "rejected": [shallow(r) for r in sorted(self.rejected, key=order)],
            "warnings": [shallow(r) for r in sorted(self.warnings, key=order)],
            "verdicts": [shallow(v) for v in self.verdicts],
        }

    @cached_property
    def plan_hash(self) -> str:
        """SHA-256 of the plan's canonical JSON: equal plans, equal hashes, on any machine."""
        return sha256_hex(canonical_json(self._body()))

    def to_dict(self) -> dict[str, Any]:
        """Plain data: counts, strategies, changes, rejected rows, and the plan hash."""
        return {**self._body(), "plan_hash": self.plan_hash}

    def to_json(self, indent: int | None = 2) -> str:
        """The plan as one JSON document (values in their canonical form)."""
        return json.dumps(json.loads(canonical_json(self.to_dict())), indent=indent,
                          ensure_ascii=False, sort_keys=True)
