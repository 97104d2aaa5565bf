"""What must change remotely: a canonical source frame against the state's copy (pure, no IO).

Both frames follow the canonical convention of :mod:`sync.reference.rules.normalise` (index =
record keys,
one object column per field, ``_digest``). Keys are aligned with one merge of the two sorted
indexes and rows compared by digest, so the cost is a few vector passes whatever the size;
field-level before/after is worked out only for the rows whose digest differs. Every output
is sorted by key, so the same inputs always give the same diff.

Held keys (``hold``: rows normalisation rejected, or that iCompleat refused) are left exactly
as the state has them: never created, edited or deleted. A state key is also held when it
collides with a held key (``collision_key``): a source holding "042" and "42" that were both
rejected must not delete the remote "0042" either.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from sync.foundation.entities import Kind
from sync.foundation.reprs import brief_repr
from sync.reference.rules.columns import as_arrow, column_objects
from sync.reference.rules.keys import collision_key, positions, strictly_increasing
from sync.reference.rules.values import canonical_json


@dataclass(frozen=True)
class FieldChange:
    """One field of one record: the remote copy's value and the source's."""

    field: str
    before: Any
    after: Any


@dataclass(frozen=True)
class Edit:
    """A record that exists on both sides with different values."""

    key: str
    changes: tuple[FieldChange, ...]


@dataclass(frozen=True)
class KindDiff:
    """Creates, edits and deletes of one kind (keys sorted), and how many rows are unchanged.

    ``held`` lists the state keys left untouched because their source row is held back.
    """

    __repr__ = brief_repr

    kind: str
    creates: tuple[str, ...] = ()
    edits: tuple[Edit, ...] = ()
    deletes: tuple[str, ...] = ()
    unchanged: int = 0
    held: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        """True when nothing has to change."""
        return not (self.creates or self.edits or self.deletes)

    @property
    def edited_keys(self) -> tuple[str, ...]:
        """The keys of the edited records, sorted."""
        return tuple(e.key for e in self.edits)

    @property
    def remote_count(self) -> int:
        """How many records the remote copy holds."""
        return self.unchanged + len(self.edits) + len(self.deletes) + len(self.held)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output and the plan hash."""
        return {
            "kind": self.kind, "creates": list(self.creates), "deletes": list(self.deletes),
            "edits": [{"key": e.key, "changes": [
                {"field": c.field, "before": c.before, "after": c.after} for c in e.changes]}
                for e in self.edits],
            "unchanged": self.unchanged, "held": list(self.held),
        }


def _ordered(frame: pd.DataFrame, side: str) -> tuple[pd.DataFrame, np.ndarray, Any]:
    """``frame`` sorted by key, its keys, and the keys as Arrow (when they are all text)."""
    keys = np.asarray(frame.index, dtype=object)
    arrow = as_arrow(keys)
    if strictly_increasing(keys, arrow):
        return frame, keys, arrow
    if not frame.index.is_unique:
        dupes = frame.index[frame.index.duplicated()].unique()[:5].tolist()
        raise ValueError(f"the {side} frame has duplicate keys {dupes}; "
                         "frames must come from normalise() or canonical_records()")
    frame = frame.sort_index()
    keys = np.asarray(frame.index, dtype=object)
    return frame, keys, as_arrow(keys)


def _exact(keys: np.ndarray, arrow: Any, hold: list[str]) -> np.ndarray:
    """Which ``keys`` are in ``hold`` exactly."""
    if not hold:
        return np.zeros(len(keys), dtype=bool)
    return positions(keys, np.array(hold, dtype=object), values_arrow=arrow) >= 0


def _held(keys: np.ndarray, hold: list[str]) -> np.ndarray:
    """Which of ``keys`` collide with a held key (``collision_key``)."""
    if not hold or not len(keys):
        return np.zeros(len(keys), dtype=bool)
    folded = {collision_key(k) for k in hold}
    return np.array([collision_key(str(k)) in folded for k in keys.tolist()], dtype=bool)


def _edits(kind: Kind, keys: np.ndarray, rows: np.ndarray, state: pd.DataFrame,
           before: np.ndarray, source: pd.DataFrame) -> tuple[Edit, ...]:
    """Field-level changes of the source ``rows`` whose state rows are ``before``."""
    changes: list[list[FieldChange]] = [[] for _ in rows]
    for name in kind.value_fields:
        olds = column_objects(state[name])[before]
        news = column_objects(source[name].iloc[rows])
        for i, (old, new) in enumerate(zip(olds.tolist(), news.tolist(), strict=True)):
            if old != new or (type(old) is not type(new)
                              and canonical_json(old) != canonical_json(new)):
                changes[i].append(FieldChange(name, old, new))
    return tuple(Edit(str(keys[r]), tuple(c)) for r, c in zip(rows, changes, strict=True))


def diff(kind: Kind, source: pd.DataFrame, state: pd.DataFrame, *,
         hold: Iterable[str] = ()) -> KindDiff:
    """Creates, edits (field by field) and deletes that turn ``state`` into ``source``."""
    source, skeys, sarrow = _ordered(source, "source")
    state, tkeys, tarrow = _ordered(state, "state")
    held_keys = list(dict.fromkeys(hold))
    where = positions(skeys, tkeys, values_arrow=sarrow, within_arrow=tarrow)
    gone = np.ones(len(tkeys), dtype=bool)
    gone[where[where >= 0]] = False
    source_held = _exact(skeys, sarrow, held_keys)
    state_held = _exact(tkeys, tarrow, held_keys)
    state_held[gone] |= _held(tkeys[gone], held_keys)
    both = np.flatnonzero((where >= 0) & ~source_held)
    src_digest = source["_digest"].to_numpy(dtype=object)
    st_digest = state["_digest"].to_numpy(dtype=object)
    changed = both[np.asarray(src_digest[both] != st_digest[where[both]], dtype=bool)]
    return KindDiff(
        kind=kind.name,
        creates=tuple(skeys[(where < 0) & ~source_held].tolist()),
        edits=_edits(kind, skeys, changed, state, where[changed], source),
        deletes=tuple(tkeys[gone & ~state_held].tolist()),
        unchanged=len(both) - len(changed),
        held=tuple(tkeys[state_held].tolist()),
    )


def apply_diff(kind: Kind, state: pd.DataFrame, source: pd.DataFrame,
               d: KindDiff) -> pd.DataFrame:
    """The state after ``d`` is applied: deletes gone, creates and edits taken from ``source``."""
    taken = set(d.creates) | set(d.edited_keys)
    keep = state.index[~state.index.isin(set(d.deletes) | taken)]
    keys = np.array(sorted([*keep.tolist(), *taken]), dtype=object)
    columns = [*kind.field_names, "_digest"]
    from_source = np.isin(keys, list(taken))
    data = {}
    for name in columns:
        values = np.empty(len(keys), dtype=object)
        values[from_source] = column_objects(source.loc[keys[from_source], name])
        values[~from_source] = column_objects(state.loc[keys[~from_source], name])
        data[name] = values
    return pd.DataFrame(data, index=pd.Index(keys, dtype=object, name="key"), dtype=object)
