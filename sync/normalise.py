"""Source frame -> canonical frame, plus every row set aside with its reason (pure, no IO).

Columns: a field takes the source column its mapping names (matched case-insensitively), else
the source column whose name equals the field's name ignoring case; a field with neither is
missing on every row. A configured default fills a field's missing cells (and a missing column).
Values then follow the rules of :mod:`sync.keys` (NBSP -> space, NFC, trimmed, "" -> missing;
emoji and RTL marks kept; control characters, undecodable bytes, U+FFFD and lone surrogates
refused; text longer than the contract's limit refused).

Rows are REJECTED (left out of the frame, listed with a reason) for: a missing or empty key
(``missing_code``), a missing required value (``missing_value``), a bad text value
(``too_long``, ``control_chars``, ``bad_encoding``, ``bad_value``), a key that collides with
another row's once case, surrounding whitespace, width and zero padding are ignored
(``duplicate_key``: EVERY member of the group is rejected and each message lists them all, so
which one wins never flips between runs), an unknown ISO 3166 country (``bad_iso_country``) or
ISO 4217 currency (``bad_currency``) code, a negative rate (``negative_rate``), and for
currencies anything but exactly one ``IsBase`` row with Rate 1 (``base_currency``: then every
currency row is rejected, since a set without one base is refused as a whole).

Checked with a configurable outcome (``[validation]`` vat / bank: reject, warn or off): supplier
VAT numbers with python-stdnum (``bad_vat``; a number without a country prefix is checked with
the supplier's IsoCode; countries stdnum does not know are not checked), a BankAccountNumber that
looks like an IBAN (two letters, two digits, 11+ more) with schwifty (``bad_iban``), and a
BankSortCode that must be a UK sort code (6 digits, dashes allowed) or a valid BIC (``bad_bank``).
A malformed Email is a warning (``bad_email``), never a rejection.

Transformations: IsoCode and currency codes are upper-cased. Non-sent fields (VatNumber) are
checked, then blanked: the frame keeps their column but never their value. Missing IsBase and
Mandatory are false and a missing custom field Type is "List" (what iCompleat reports). A custom
field's Type and Mandatory are those of its FIRST source row; later rows that say otherwise get
a warning and take the first row's values.

The frame: index = record keys (name "key", sorted), one object column per field of the kind,
plus ``_digest``; values are plain Python objects with None for missing, never pandas NA.
Rejected rows never turn into deletes: pass ``Normalised.held_keys`` to ``diff(hold=...)`` and
their remote records (and any record colliding with them) are left exactly as they are.

Speed: a text value that is already canonical (printable ASCII, trimmed, within its limit) is
recognised in one Arrow pass and kept as the very same object; only the others go through the
scalar rules, and the library checks run once per distinct value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pycountry
from schwifty import BIC, IBAN
from stdnum import get_cc_module, vatin
from stdnum.exceptions import ValidationError

from sync.config import KindSourceConfig, ValidationConfig
from sync.entities import CUSTOM_FIELD_DEFAULT_TYPE, FieldSpec, Kind
from sync.errors import ConfigError
from sync.keys import (
    KEY_SEP,
    InvalidValue,
    as_arrow,
    canonical_column,
    canonical_json,
    canonical_value,
    collision_key,
    column_of,
    digests,
    duplicate_groups,
    mask,
    none_mask,
    positions,
    record_digest,
    record_key,
    sha256_hex,
    strictly_increasing,
)

__all__ = [
    "KEY_SEP", "KindMapping", "Normalised", "Rejection", "canonical_records", "canonical_value",
    "collision_key", "normalise", "record_digest", "record_key",
]

Severity = Literal["reject", "warn"]
IMPLIED: dict[tuple[str, str], Any] = {("currencies", "IsBase"): False}
DEFINITION_DEFAULTS: dict[str, Any] = {"Type": CUSTOM_FIELD_DEFAULT_TYPE, "Mandatory": False}


@dataclass(frozen=True)
class Rejection:
    """A source row (or one field of it) that was set aside or warned about, and why.

    ``row`` is the 1-based position in the frame the source returned; ``source_digest`` is a
    digest of the row as read, so a quarantined row can be retried once it changes.
    """

    kind: str
    key: str | None
    row: int | None
    field: str | None
    reason: str
    message: str
    source_digest: str
    severity: Severity = "reject"


class Finding(NamedTuple):
    """One problem with one cell (0-based row), before it becomes a Rejection."""

    row: int
    field: str
    reason: str
    detail: str
    severity: Severity


@dataclass(frozen=True)
class KindMapping:
    """Canonical field name <- source column, constant defaults, and whether to trim text."""

    mapping: Mapping[str, str] = field(default_factory=dict)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    trim: bool = True

    @classmethod
    def from_config(cls, config: KindSourceConfig | None) -> KindMapping:
        """The mapping a ``[sources.<name>.kinds.<kind>]`` table describes (None: no table)."""
        if config is None:
            return cls()
        return cls(dict(config.mapping), dict(config.defaults), config.trim)


@dataclass(frozen=True)
class Normalised:
    """The canonical frame of the rows that can be sent, and the rows set aside."""

    frame: pd.DataFrame
    rejected: tuple[Rejection, ...] = ()
    warnings: tuple[Rejection, ...] = ()

    @property
    def held_keys(self) -> tuple[str, ...]:
        """Keys of rejected rows: their remote records must be neither edited nor deleted."""
        return tuple(sorted({r.key for r in self.rejected if r.key is not None}))

    @property
    def rejected_rows(self) -> int:
        """How many source rows were set aside (a row may carry several rejections)."""
        return len({r.row for r in self.rejected})


def _columns(kind: Kind, raw: pd.DataFrame, mapping: KindMapping) -> dict[str, pd.Series]:
    """Field -> source column, explicit mapping first, then same name ignoring case."""
    lookup = {str(c).casefold(): c for c in raw.columns}
    chosen: dict[str, pd.Series] = {}
    for name, column in mapping.mapping.items():
        if name not in kind.field_names:
            raise ConfigError(f"{kind.label} have no field {name!r}; fields: "
                              f"{', '.join(kind.field_names)}", key=f"mapping.{name}")
        if str(column).casefold() not in lookup:
            raise ConfigError(f"{kind.label}: {name} is mapped from column {column!r}, which the "
                              f"source does not have; it has: {', '.join(map(str, raw.columns))}",
                              key=f"mapping.{name}")
        chosen[name] = raw[lookup[str(column).casefold()]]
    used = {str(c).casefold() for c in mapping.mapping.values()}
    for name in kind.field_names:
        if name not in chosen and name.casefold() in lookup and name.casefold() not in used:
            chosen[name] = raw[lookup[name.casefold()]]
    return chosen


def _default(kind: Kind, spec: FieldSpec, mapping: KindMapping) -> Any:
    if spec.name not in mapping.defaults:
        return IMPLIED.get((kind.name, spec.name))
    try:
        return canonical_value(spec, mapping.defaults[spec.name], trim=mapping.trim)
    except InvalidValue as exc:
        raise ConfigError(f"{kind.label}: the default for {spec.name} {exc}",
                          key=f"defaults.{spec.name}") from None


@dataclass
class _Work:
    """The columns being normalised and what was found wrong with them."""

    kind: Kind
    n: int
    raw: dict[str, pd.Series]
    cols: dict[str, np.ndarray] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    arrow: dict[str, Any] = field(default_factory=dict)

    def add(self, rows: Iterable[int], spec: FieldSpec, reason: str, detail: str,
            severity: Severity = "reject") -> None:
        self.findings += [Finding(int(r), spec.name, reason, detail, severity) for r in rows]


def _canonicalise(work: _Work, spec: FieldSpec, mapping: KindMapping) -> None:
    source = work.raw.get(spec.name)
    default = _default(work.kind, spec, mapping)
    if source is None:
        work.cols[spec.name] = np.full(work.n, default, dtype=object)
        values: np.ndarray = work.cols[spec.name]
    else:
        column = column_of(spec, source, trim=mapping.trim)
        values, problems = column.values, column.problems
        for i, exc in problems.items():
            work.add([i], spec, exc.reason, str(exc))
        empty = mask(column.arrow.is_null()) if column.arrow is not None else none_mask(values)
        if default is not None and empty.any():
            empty[list(problems)] = False
            values = values.copy()
            values[empty] = default
        elif column.arrow is not None:
            work.arrow[spec.name] = column.arrow
        work.cols[spec.name] = values
    if spec.required:
        arrow = work.arrow.get(spec.name)
        missing = np.flatnonzero(mask(arrow.is_null()) if arrow is not None else none_mask(values))
        bad = {f.row for f in work.findings if f.field == spec.name}
        reason = "missing_code" if spec.name in work.kind.key else "missing_value"
        work.add([r for r in missing.tolist() if r not in bad], spec, reason,
                 "is empty; every row needs one, fill it in the source")


def _keys(work: _Work) -> np.ndarray:
    """Each row's record key, or None when a key part is missing."""
    parts = [work.cols[name] for name in work.kind.key]
    if len(parts) == 1:
        return parts[0]
    return np.array([None if any(p is None for p in ps) else KEY_SEP.join(map(str, ps))
                     for ps in zip(*parts, strict=True)], dtype=object)


def _show(key: str) -> str:
    return " / ".join(key.split(KEY_SEP))


def _collisions(work: _Work, keys: np.ndarray) -> None:
    """Reject every member of each group of keys that fold to the same collision key."""
    arrow = work.arrow.get(work.kind.key[0]) if len(work.kind.key) == 1 else None
    label = " / ".join(work.kind.key)
    for members in duplicate_groups(keys, arrow):
        listed = [f"{_raw_key(work, r)!r} (row {r + 1})" for r in members[:10]]
        more = f" and {len(members) - 10} more" if len(members) > 10 else ""
        detail = (f"collides with other rows once case, spacing and leading zeros are ignored: "
                  f"{', '.join(listed)}{more}; all are held back until the {label} values are "
                  "made unique in the source")
        work.add(members, work.kind.field(work.kind.key[-1]), "duplicate_key", detail)


def _raw_key(work: _Work, row: int) -> str:
    parts = [work.raw[n].iat[row] if n in work.raw else None for n in work.kind.key]
    return " / ".join("" if p is None else str(p) for p in parts)


def _base_currency(work: _Work, rejected: set[int]) -> None:
    """Exactly one IsBase currency with Rate 1, else every currency row is rejected."""
    live = [r for r in range(work.n) if r not in rejected]
    base = [r for r in live if work.cols["IsBase"][r] is True]
    codes = [str(work.cols["Code"][r]) for r in base]
    if not live or (len(base) == 1 and work.cols["Rate"][base[0]] == 1):
        return
    if not base:
        detail = "no currency has IsBase = true; mark exactly one base currency in the source"
    elif len(base) > 1:
        detail = (f"{len(base)} currencies have IsBase = true ({', '.join(codes[:10])}); "
                  "exactly one base currency is allowed, fix IsBase in the source")
    else:
        detail = (f"the base currency {codes[0]} has Rate {work.cols['Rate'][base[0]]}; a base "
                  "currency's Rate must be 1, fix it in the source")
    detail += " (every currency row is held back until then)"
    work.add(live, work.kind.field("IsBase"), "base_currency", detail)


def _field_definitions(work: _Work, warn: bool) -> None:
    """Give every value row of a custom field the Type and Mandatory of the field's first row."""
    first: dict[Any, int] = {}
    for row, name in enumerate(work.cols["Field"].tolist()):
        first.setdefault(name, row)
    for column in ("Type", "Mandatory"):
        spec, values = work.kind.field(column), work.cols[column].copy()
        implied = DEFINITION_DEFAULTS[column]
        for row, name in enumerate(work.cols["Field"].tolist()):
            wanted = values[first[name]] if values[first[name]] is not None else implied
            if warn and values[row] is not None and values[row] != wanted:
                work.add([row], spec, "bad_value", f"is {values[row]!r}, but the field's first "
                         f"row (row {first[name] + 1}) says {wanted!r}, which is used", "warn")
            values[row] = wanted
        work.cols[column] = values


# Field checks. Each looks at a column once: regular expressions run over the whole column in
# one vector pass, and the library checks (pycountry, stdnum, schwifty) run once per distinct
# value, cached across runs, so a million suppliers cost what their distinct values cost.

EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_SORT_CODE = r"^[0-9]{2}-?[0-9]{2}-?[0-9]{2}$"
_BIC_SHAPE = r"^[A-Za-z]{6}[A-Za-z0-9]{2}([A-Za-z0-9]{3})?$"
_IBAN_SHAPE = r"^[A-Za-z]{2}[0-9]{2}[A-Za-z0-9 ]{11,}$"


def _rows_matching(work: _Work, name: str, pattern: str, match: bool = True) -> np.ndarray:
    """Rows whose (non-missing) value of field ``name`` does or does not match ``pattern``."""
    values = work.cols[name]
    texts = work.arrow.get(name)
    if texts is None:
        texts = pa.array([None if v is None else str(v) for v in values], type=pa.string())
    hits = pc.match_substring_regex(texts, pattern)
    wanted = hits if match else pc.invert(hits)
    return np.flatnonzero(mask(pc.fill_null(wanted, False)))


def _rows_failing(values: np.ndarray, rows: np.ndarray,
                  problem: Callable[[str], str | None]) -> dict[int, str]:
    """Row -> problem text, calling ``problem`` once per distinct value among ``rows``."""
    found = {str(v): problem(str(v)) for v in pd.unique(values[rows].astype(str))}
    return {int(r): p for r in rows.tolist() if (p := found[str(values[r])]) is not None}


def _severity(setting: str) -> Severity:
    return "reject" if setting == "reject" else "warn"


@lru_cache(maxsize=1)
def _countries() -> frozenset[str]:
    return frozenset(c.alpha_2 for c in pycountry.countries)


@lru_cache(maxsize=1)
def _currencies() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies)


def _upper_code(work: _Work, spec: FieldSpec, known: frozenset[str], reason: str,
                what: str) -> None:
    values, arrow = work.cols[spec.name], work.arrow.get(spec.name)
    if arrow is not None:
        uniques = [u for u in pc.unique(arrow).to_pylist() if u is not None]
    else:
        uniques = [str(u) for u in pd.unique(values[~none_mask(values)])]
    if any(u != u.upper() for u in uniques):
        present = np.flatnonzero(~none_mask(values))
        values = values.copy()
        values[present] = np.array([str(v).upper() for v in values[present]], dtype=object)
        work.cols[spec.name], arrow = values, None
        work.arrow.pop(spec.name, None)
    bad = sorted({u.upper() for u in uniques} - known)
    if not bad:
        return
    hits = pc.is_in(arrow, value_set=pa.array(bad)) if arrow is not None else None
    rows = (np.flatnonzero(mask(pc.fill_null(hits, False))) if hits is not None else
            np.flatnonzero(pd.Series(values, dtype=object).isin(bad).to_numpy()))
    for row in rows.tolist():
        work.add([row], spec, reason, f"{values[row]!r} is not {what}; correct it in the source")


def _check_country(work: _Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    _upper_code(work, spec, _countries(), "bad_iso_country",
                "an ISO 3166 two-letter country code (GB, IE, US...)")


def _check_currency(work: _Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    _upper_code(work, spec, _currencies(), "bad_currency",
                "an ISO 4217 currency code (GBP, EUR, USD...)")


def _check_rate(work: _Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    values = work.cols[spec.name]
    rows = [r for r, v in enumerate(values.tolist()) if isinstance(v, float) and v < 0]
    work.add(rows, spec, "negative_rate", "is negative; a rate must be 0 or more")


def _check_email(work: _Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    rows = _rows_matching(work, spec.name, EMAIL_PATTERN, match=False)
    work.add(rows.tolist(), spec, "bad_email",
             "does not look like one email address (name@example.com); it is sent as it is",
             "warn")


@lru_cache(maxsize=1 << 16)
def _vat_problem(number: str, country: str | None) -> str | None:
    compact = re.sub(r"[\s.\-]", "", number).upper()
    if not compact[:2].isalpha():
        if not country:
            return None  # no country to check it against
        compact = {"GR": "EL"}.get(country, country) + compact
    prefix = compact[:2]
    if prefix not in ("EL", "XI") and get_cc_module(prefix.lower(), "vat") is None:
        return None  # a country python-stdnum cannot check
    try:
        vatin.validate(compact)
    except ValidationError as exc:
        return f"{number!r} is not a valid VAT number ({exc})"
    return None


def _check_vat(work: _Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    if validation.vat == "off":
        return
    values = work.cols[spec.name]
    countries = work.cols.get("IsoCode", np.full(work.n, None, dtype=object))
    rows = np.flatnonzero(~none_mask(values)).tolist()
    pairs = {(str(values[r]), countries[r]) for r in rows}
    found = {pair: _vat_problem(*pair) for pair in pairs}
    for row in rows:
        if (problem := found[(str(values[row]), countries[row])]) is not None:
            work.add([row], spec, "bad_vat", f"{problem}; correct it or set "
                     "[validation] vat", _severity(validation.vat))


@lru_cache(maxsize=1 << 16)
def _iban_problem(value: str) -> str | None:
    try:
        IBAN(value)
    except ValueError as exc:
        return f"{value!r} looks like an IBAN but is not a valid one ({exc})"
    return None


@lru_cache(maxsize=1 << 16)
def _bic_problem(value: str) -> str | None:
    try:
        BIC(value)
    except ValueError as exc:
        return f"{value!r} is not a valid BIC ({exc})"
    return None


def _check_iban(work: _Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    if validation.bank == "off":
        return
    values = work.cols[spec.name]
    for row, problem in _rows_failing(values, _rows_matching(work, spec.name, _IBAN_SHAPE),
                                      _iban_problem).items():
        work.add([row], spec, "bad_iban", f"{problem}; correct it or set [validation] bank",
                 _severity(validation.bank))


def _check_sort_code(work: _Work, spec: FieldSpec, validation: ValidationConfig) -> None:
    if validation.bank == "off":
        return
    values = work.cols[spec.name]
    other = _rows_matching(work, spec.name, _SORT_CODE, match=False)
    shaped = np.intersect1d(other, _rows_matching(work, spec.name, _BIC_SHAPE))
    failing = _rows_failing(values, shaped, _bic_problem)
    for row in np.setdiff1d(other, shaped).tolist():
        failing[row] = f"{values[row]!r} is neither a UK sort code (12-34-56) nor a BIC"
    for row, problem in sorted(failing.items()):
        work.add([row], spec, "bad_bank", f"{problem}; correct it or set [validation] bank",
                 _severity(validation.bank))


_CHECKS: dict[str, Callable[[_Work, FieldSpec, ValidationConfig], None]] = {
    "iso_country": _check_country, "currency": _check_currency, "rate": _check_rate,
    "email": _check_email, "vat": _check_vat, "iban": _check_iban,
    "sort_code_or_bic": _check_sort_code,
}


def _source_digest(work: _Work, row: int) -> str:
    values = {name: series.iat[row] for name, series in work.raw.items()}
    return sha256_hex(canonical_json({k: _jsonable(v) for k, v in values.items()}))


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "bytes:" + value.hex()
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return None if isinstance(value, float) and value != value else value
    return str(value)


def _rejections(work: _Work, keys: np.ndarray) -> tuple[list[Rejection], list[Rejection]]:
    out: dict[str, list[Rejection]] = {"reject": [], "warn": []}
    digest_of: dict[int, str] = {}
    for f in sorted(work.findings, key=lambda f: (f.row, f.field, f.reason)):
        key = keys[f.row]
        where = f"{work.kind.label} row {f.row + 1}" + (f" ({_show(key)})" if key else "")
        digest = digest_of.setdefault(f.row, _source_digest(work, f.row))
        out[f.severity].append(Rejection(work.kind.name, key, f.row + 1, f.field, f.reason,
                                         f"{where}: {f.field} {f.detail}", digest, f.severity))
    return out["reject"], out["warn"]


def _frame(kind: Kind, cols: Mapping[str, np.ndarray], keys: np.ndarray,
           digest: Iterable[str]) -> pd.DataFrame:
    data = {name: cols[name] if kind.field(name).sent else np.full(len(keys), None, object)
            for name in kind.field_names}
    data["_digest"] = np.array(list(digest), dtype=object)
    index = pd.Index(keys, dtype=object, name="key")
    return pd.DataFrame(data, index=index, dtype=object, copy=False)


def _every_row(rows: np.ndarray, n: int) -> bool:
    """True when ``rows`` is 0, 1, ... n-1."""
    return len(rows) == n and (n == 0 or (rows[0] == 0 and bool((np.diff(rows) == 1).all())))


def _take(cols: Mapping[str, np.ndarray], rows: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """``cols`` at ``rows``; the arrays themselves when ``rows`` is every row in order."""
    if _every_row(rows, n):
        return dict(cols)
    return {name: values[rows] for name, values in cols.items()}


def _key_arrow(work: _Work, rows: np.ndarray) -> Any:
    """The keys at ``rows`` as Arrow, when the key column is cached as Arrow."""
    arrow = work.arrow.get(work.kind.key[0]) if len(work.kind.key) == 1 else None
    if arrow is None or len(rows) == work.n:
        return arrow
    return arrow.take(pa.array(rows))


def _sorted_rows(work: _Work, keys: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``rows`` ordered by their (unique) keys; left as they are when already in order."""
    arrow = _key_arrow(work, rows)
    if strictly_increasing(keys[rows], arrow):
        return rows
    if arrow is None:
        arrow = as_arrow(keys[rows])
    if arrow is None:
        return rows[sorted(range(len(rows)), key=lambda i: str(keys[rows[i]]))]
    order = np.asarray(pc.sort_indices(arrow).to_numpy(zero_copy_only=False), dtype=np.intp)
    return np.asarray(rows[order])


def _digests(work: _Work, keys: np.ndarray, rows: np.ndarray,
             known: pd.DataFrame | None) -> np.ndarray:
    """Digests of ``rows``; rows equal to their ``known`` state row reuse its digest."""
    out = np.empty(len(rows), dtype=object)
    todo = np.arange(len(rows))
    if known is not None and len(known) and len(rows):
        where = positions(keys[rows], np.asarray(known.index, dtype=object),
                          values_arrow=_key_arrow(work, rows))
        same = (where >= 0) & _equal_rows(work, rows, known, where)
        out[same] = known["_digest"].to_numpy(dtype=object)[where[same]]
        todo = np.flatnonzero(~same)
    out[todo] = digests(work.kind, work.cols, rows[todo])
    return out


def _equal_text(work: _Work, name: str, rows: np.ndarray, known: pd.DataFrame,
                where: np.ndarray) -> np.ndarray:
    """Cell-by-cell equality of a text column with the known rows at ``where`` (-1: none)."""
    mine, other = work.arrow.get(name), as_arrow(known[name].to_numpy(dtype=object))
    if mine is None:
        mine = as_arrow(work.cols[name])
    if mine is None or other is None:
        values = known[name].to_numpy(dtype=object)[where]
        return np.asarray(work.cols[name][rows] == values, dtype=bool)
    if not _every_row(rows, work.n):
        mine = mine.take(pa.array(rows))
    other = other.take(pa.array(where, mask=where < 0))
    both_missing = pc.and_(pc.is_null(mine), pc.is_null(other))
    return mask(pc.fill_null(pc.or_kleene(pc.equal(mine, other), both_missing), False))


def _equal_rows(work: _Work, rows: np.ndarray, known: pd.DataFrame,
                where: np.ndarray) -> np.ndarray:
    """Rows whose every sent value equals the known row's at ``where`` (-1 rows: ignore)."""
    same = np.ones(len(rows), dtype=bool)
    for name in work.kind.sent_fields:
        kind = work.kind.field(name).type
        if kind == "str":
            same &= _equal_text(work, name, rows, known, where)
            continue
        mine, other = work.cols[name][rows], known[name].to_numpy(dtype=object)[where]
        if kind == "json":
            both = np.flatnonzero(~(none_mask(mine) & none_mask(other)))
            same[both] &= np.array([canonical_json(mine[i]) == canonical_json(other[i])
                                    for i in both.tolist()], dtype=bool)
        else:
            same &= np.asarray(mine == other, dtype=bool)  # int/float/bool or text: no overlap
    return same


def normalise(
    kind: Kind, raw: pd.DataFrame, mapping: KindMapping | None = None,
    validation: ValidationConfig | None = None, *, known: pd.DataFrame | None = None,
) -> Normalised:
    """The canonical frame of ``raw`` plus the rejected and warned rows (see module docstring).

    ``known`` (optional, the state's canonical frame) only saves work: a row equal to its known
    row takes that row's digest instead of computing it again. The result is the same.
    """
    mapping, validation = mapping or KindMapping(), validation or ValidationConfig()
    work = _Work(kind, len(raw), _columns(kind, raw, mapping))
    for spec in kind.fields:
        _canonicalise(work, spec, mapping)
    for spec in kind.fields:
        if spec.check is not None:
            _CHECKS[spec.check](work, spec, validation)
    if kind.name == "custom_fields":
        _field_definitions(work, warn=True)
    keys = _keys(work)
    _collisions(work, keys)
    rejected = {f.row for f in work.findings if f.severity == "reject"}
    if kind.name == "currencies":
        _base_currency(work, rejected)
        rejected = {f.row for f in work.findings if f.severity == "reject"}
    good = np.array([r for r in range(work.n) if r not in rejected and keys[r] is not None],
                    dtype=np.intp) if rejected else np.flatnonzero(~none_mask(keys))
    rows = _sorted_rows(work, keys, good)
    frame = _frame(kind, _take(work.cols, rows, work.n), _take({"": keys}, rows, work.n)[""],
                   _digests(work, keys, rows, known))
    bad, warned = _rejections(work, keys)
    return Normalised(frame, tuple(bad), tuple(warned))


def canonical_records(kind: Kind, records: Iterable[Mapping[str, Any]], *, trim: bool = True,
                      stored_digests: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The canonical frame of records read back from iCompleat or kept in state (tolerant).

    Nothing is rejected: unconvertible values are kept as text, omitted and None are equal,
    extra fields are ignored, a record without a key is skipped and the last of two records
    with one key wins. ``stored_digests`` (key -> digest kept beside these very records, as
    the state database does) are used as they are instead of being computed again: at a
    million records that saves seconds. Keys without one are digested.
    """
    items = list(records)
    cols: dict[str, np.ndarray] = {}
    for spec in kind.fields:
        values = pd.Series([r.get(spec.name) for r in items], dtype=object)
        cols[spec.name], _ = canonical_column(spec, values, trim=trim, strict=False)
        implied = IMPLIED.get((kind.name, spec.name))
        if implied is not None:
            cols[spec.name] = np.where(none_mask(cols[spec.name]), implied, cols[spec.name])
    work = _Work(kind, len(items), {}, cols)
    if kind.name == "custom_fields":
        _field_definitions(work, warn=False)
    keys = _keys(work)
    last = pd.Series(np.arange(len(items)), index=pd.Index(keys, dtype=object))
    last = last[~none_mask(keys)]
    good = last[~last.index.duplicated(keep="last")].to_numpy()
    rows = _sorted_rows(work, keys, np.sort(good))
    stored = stored_digests or {}
    out = np.array([stored.get(k) for k in keys[rows].tolist()] if stored else
                   [None] * len(rows), dtype=object)
    todo = np.flatnonzero(none_mask(out))
    out[todo] = digests(kind, work.cols, rows[todo])
    return _frame(kind, {n: c[rows] for n, c in work.cols.items()}, keys[rows], out)
