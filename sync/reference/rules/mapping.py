"""The ERP's columns -> iCompleat's fields, before any value rule runs (pure, no IO).

:func:`shape` turns the frame a source returned into one column per canonical field:

- **blank rows** (every cell empty or spaces: the trailer line many exports write) are
  skipped and counted, never quarantined;
- a ``where`` filter (SQL-like, see :mod:`sync.reference.rules.where`) leaves out rows such
  as inactive or closed accounts; they are counted, and being absent from the source they are
  deleted from iCompleat like any record that left the ERP;
- each field takes, in order: its ``mapping`` entry, else the source column of the same name
  (ignoring case). A mapping entry is a column name, a template (``"{Street 1}, {Street 2}"``:
  text with ``{column}`` placeholders; empty when every placeholder is), a list of those (a
  FALLBACK: the first that is not empty, for example ``["IBAN", "Account Number"]``), the same
  marked optional (``{ columns = ["IBAN"], optional = true }``: no error, and no value, when
  the source has none of them), or a constant (``{ value = "NetDays" }``);
- ``base_currency = "GBP"`` marks that currency as the base (``IsBase``, and ``Rate`` 1 when
  empty) for ERPs whose currency list has no base flag, and adds it (named by its code, rate
  1) when the list leaves the base currency out altogether (Business Central).

A mapped column that the source does not have is a configuration error naming the field and the
columns the source does have (a fallback list needs at least one of its columns).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from sync.foundation.entities import Kind
from sync.foundation.errors import ConfigError
from sync.reference.rules.columns import mask, source_arrow
from sync.reference.rules.where import Columns as _Columns
from sync.reference.rules.where import cell_text as _text
from sync.reference.rules.where import evaluate, parse_where

MappingEntry = str | Sequence[str] | Mapping[str, Any]
_PLACEHOLDER = re.compile(r"\{([^{}]+)\}")


@dataclass(frozen=True)
class Shaped:
    """Canonical-named columns, the source position of each kept row, and the rows left out."""

    frame: pd.DataFrame
    origin: np.ndarray
    blank: int = 0
    filtered: int = 0


@dataclass(frozen=True)
class Rules:
    """How one kind's columns are mapped (the kind's source table, resolved presets included)."""

    mapping: Mapping[str, MappingEntry] = field(default_factory=dict)
    where: str | None = None
    base_currency: str | None = None


def _empty(values: pd.Series) -> np.ndarray:
    """Which cells are missing, or text of spaces only."""
    arr = source_arrow(values)
    if arr is not None:
        return _empty_arrow(arr)
    cells = values.to_numpy(dtype=object)
    missing = np.asarray(pd.isna(cells), dtype=bool)
    blank = np.fromiter((isinstance(v, str) and not v.strip() for v in cells.tolist()),
                        dtype=bool, count=len(cells))
    return np.asarray(missing | blank, dtype=bool)


def _empty_arrow(arr: Any) -> np.ndarray:
    """:func:`_empty` of an Arrow column: printable-ASCII text is blank when it holds only
    spaces (the only whitespace such text can hold); any other text is asked of Python."""
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        return mask(pc.is_null(arr))
    printable = pc.fill_null(pc.ascii_is_printable(arr), True)
    spaces = pc.equal(pc.binary_length(pc.utf8_trim(arr, " ")), 0)
    out = mask(pc.fill_null(pc.or_kleene(pc.is_null(arr), pc.and_(printable, spaces)), True))
    other = np.flatnonzero(~mask(printable))
    if len(other):
        out[other] = [not v.strip() for v in arr.take(pa.array(other)).to_pylist()]
    return out


def blank_rows(raw: pd.DataFrame) -> np.ndarray:
    """Rows in which every cell is missing or blank text (each column is only looked at for
    the rows still blank so far, so a filled first column makes this almost free)."""
    blank = np.ones(len(raw), dtype=bool)
    for position in range(raw.shape[1]):
        rows = np.flatnonzero(blank)
        if not len(rows):
            break
        column = raw.iloc[:, position]
        blank[rows] = _empty(column if len(rows) == len(raw) else column.iloc[rows])
    return blank


def _placeholders(entry: str) -> list[str]:
    return _PLACEHOLDER.findall(entry)


def _needs(entry: str) -> list[str]:
    """The source columns one column-or-template entry reads."""
    return _placeholders(entry) if "{" in entry else [entry]


def _template(entry: str, cols: _Columns) -> pd.Series:
    names = _placeholders(entry)
    parts = [cols.get(n).map(_text).tolist() for n in names]
    out: list[str | None] = []
    for row in zip(*parts, strict=True) if parts else [()] * len(cols.raw):
        if parts and not any(p.strip() for p in row):
            out.append(None)
            continue
        out.append(_fill(entry, row))
    return pd.Series(out, index=cols.raw.index, dtype=object)


def _fill(entry: str, row: Sequence[str]) -> str:
    """``entry`` with its placeholders replaced, in order, by ``row``."""
    values = iter(row)
    return _PLACEHOLDER.sub(lambda _m: next(values), entry)


def _one(entry: str, cols: _Columns) -> pd.Series:
    return _template(entry, cols) if "{" in entry else cols.get(entry)


def _constant(value: Any, n: int, index: pd.Index) -> pd.Series:
    return pd.Series([value] * n, index=index, dtype=object)


def _resolve(kind: Kind, name: str, entry: MappingEntry, cols: _Columns) -> pd.Series | None:
    """The column one mapping entry gives (ConfigError when its columns are missing; None
    for an optional entry none of whose columns the source has)."""
    optional = False
    if isinstance(entry, Mapping):
        if set(entry) == {"value"}:
            return _constant(entry["value"], len(cols.raw), cols.raw.index)
        if "columns" not in entry or not set(entry) <= {"columns", "optional"}:
            raise ConfigError(f"{kind.label}: write a constant as {{ value = ... }} and "
                              f"columns as {{ columns = [...], optional = true }}, not "
                              f"{dict(entry)!r}", key=f"mapping.{name}")
        optional, entry = bool(entry.get("optional", False)), entry["columns"]
    choices = [entry] if isinstance(entry, str) else list(entry)
    usable = [c for c in choices if all(cols.has(n) for n in _needs(c))]
    if not usable and optional:
        return None
    if not usable:
        missing = sorted({n for c in choices for n in _needs(c) if not cols.has(n)})
        raise ConfigError(f"{kind.label}: {name} is mapped from column(s) {missing}, which the "
                          f"source does not have; it has: {cols.names()}", key=f"mapping.{name}")
    result = _one(usable[0], cols)  # a plain column keeps its dtype (Arrow stays Arrow)
    if len(usable) > 1:
        result = result.astype(object)
    for choice in usable[1:]:
        empty = _empty(result)
        if not empty.any():
            break
        result = result.where(~empty, _one(choice, cols).astype(object))
    return result


def _used_columns(mapping: Mapping[str, MappingEntry]) -> set[str]:
    used: set[str] = set()
    for entry in mapping.values():
        if isinstance(entry, Mapping):
            entry = entry.get("columns", [])
        for choice in [entry] if isinstance(entry, str) else entry:
            used |= {n.strip().casefold() for n in _needs(choice)}
    return used


def map_columns(kind: Kind, raw: pd.DataFrame,
                mapping: Mapping[str, MappingEntry]) -> dict[str, pd.Series]:
    """Field -> its column: the mapping's entry, else the same-named source column."""
    cols = _Columns(raw)
    chosen: dict[str, pd.Series] = {}
    for name, entry in mapping.items():
        if name not in kind.field_names:
            raise ConfigError(f"{kind.label} have no field {name!r}; fields: "
                              f"{', '.join(kind.field_names)} (see icsync fields {kind.name})",
                              key=f"mapping.{name}")
        column = _resolve(kind, name, entry, cols)
        if column is not None:
            chosen[name] = column
    used = _used_columns(mapping)
    for name in kind.field_names:
        if name not in chosen and cols.has(name) and name.casefold() not in used:
            chosen[name] = cols.get(name)
    return chosen


def _base_currency(chosen: dict[str, pd.Series], code: str, index: pd.Index) -> None:
    codes = chosen.get("Code")
    if codes is None:
        return
    is_base = codes.map(lambda v: _text(v).strip().upper() == code.strip().upper())
    chosen["IsBase"] = is_base.astype(object)
    rate = chosen.get("Rate")
    if rate is None:
        rate = pd.Series([None] * len(index), index=index, dtype=object)
    chosen["Rate"] = rate.astype(object).where(~(is_base.to_numpy() & _empty(rate)), 1)


def unsent_fields(kind: Kind, frame: pd.DataFrame) -> list[str]:
    """The fields a shaped frame feeds that are checked only, never sent to iCompleat."""
    return [str(c) for c in frame.columns if c in kind.field_names and not kind.field(c).sent]


def unsent_note(kind: Kind, fields: Sequence[str]) -> str:
    """The warning for a mapping that feeds fields iCompleat never receives."""
    return (f"{kind.label}: {', '.join(fields)} is validated only and never sent: iCompleat's "
            f"{kind.singular_payload.lower()} record has no such field (see icsync fields "
            f"{kind.name})")


def shape(kind: Kind, raw: pd.DataFrame, rules: Rules) -> Shaped:
    """The canonical-named frame of ``raw`` (see the module docstring)."""
    blank = blank_rows(raw)
    keep = ~blank
    filtered = 0
    if rules.where:
        matches = evaluate(parse_where(rules.where), _Columns(raw))
        filtered = int((keep & ~matches).sum())
        keep &= matches
    origin = np.flatnonzero(keep)
    rows = raw if keep.all() else raw.iloc[origin].reset_index(drop=True)
    chosen = map_columns(kind, rows, rules.mapping)
    if rules.base_currency and kind.name == "currencies":
        _base_currency(chosen, rules.base_currency, rows.index)
    # Each column keeps its dtype: an Arrow-backed one is canonicalised in Arrow, not first
    # turned into a million Python objects.
    frame = pd.DataFrame(chosen, index=rows.index, copy=False) if chosen else \
        pd.DataFrame(index=rows.index)
    if rules.base_currency and "IsBase" in frame.columns and not frame["IsBase"].any():
        code = rules.base_currency.upper()
        added = pd.DataFrame([{"Code": code, "Name": code, "Rate": 1, "IsBase": True}],
                             dtype=object)
        frame = pd.concat([frame, added], ignore_index=True).astype(object)
        frame = frame.where(frame.notna(), None)
        origin = np.append(origin, len(raw))
    return Shaped(frame, origin, int(blank.sum()), filtered)
